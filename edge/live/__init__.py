"""The live path: C1 frames -> masks (ONNX Runtime) -> belt tracks -> timed removal commands."""
