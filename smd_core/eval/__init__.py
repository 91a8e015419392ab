"""`smd eval`: scoring a model and the classical matchers on frames with ground truth.

- `loop`: `evaluate` (run the Predictor and the baselines over frames, score, report), `score_frame`,
  `summarize`;
- `data`: the `--data` specs -> frames; `baselines`: BM / SGBM / SGBM + fill beside the model;
- `curve`: the model on its least uncertain pixels (`most_confident`), flying and bad-2 against density, the
  flying breakdown against SGBM + fill;
- `report`: pictures, the overview and the text table; `cli`: the command's options and run.
"""
