"""The `beltcam` command (`main.main`): one module per command group (record/demo, import,
train/eval/export, cameras, calibrate, bridge, db), each with `add_parsers` and `run`."""
