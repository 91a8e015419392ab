"""Dense inference at any output size on either backend (`dense`, `torch_backend`, `ort_backend`, `backend`,
`confidence`), ONNX export (`export`) and the `smd predict` / `smd export` commands."""
