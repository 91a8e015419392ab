"""`smd eval`: scoring a model and the classical matchers on frames with ground truth: `loop` (`evaluate`),
`data` (`--data`), `baselines`, `curve` (edge figures against density), `report` (pictures, table), `cli`."""
