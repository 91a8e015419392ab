"""Dense inference at any output size, on either backend, and export.

`dense` (DensePredictor: pad, encode once, row-block queries; no torch), `torch_backend` (Predictor),
`ort_backend` (OrtPredictor / OnnxModel on onnxruntime, no torch), `backend` (which backend runs a model file),
`confidence` (uncertainty floor and cloud threshold), `export` (checkpoint -> ONNX), and the `smd predict` /
`smd export` commands (`predict_cli`, `export_cli`).
"""
