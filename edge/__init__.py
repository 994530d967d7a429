"""beltcam's agent: everything that wires the `trainer`, `calibration` and `firmware_bridge` libraries
into a site. One room per concern (../shared/DESIGN.md, "Inside edge/"), importing downwards only:
`cli` on top; `recorder`, `calibrate`, `nightly` (and the live path and panel) in the middle, never
importing each other; `capture` and `actuators`, then `simulator`, then `sources` and `store`, then
`config` at the bottom. `pyproject.toml`'s import-linter contracts check it."""
