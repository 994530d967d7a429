"""The temporal-consistent CAM classifier: training, baselines, evaluation and ONNX export.

An independent library: it knows nothing of the store or the agent. `edge` hands it a dataset
manifest (JSON, see `trainer.manifest`) and gets back a run directory.
"""
