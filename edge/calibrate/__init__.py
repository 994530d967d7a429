"""The technician's calibration session on top of the `calibration` library: clips and board images
from the store, files or the live cameras, one method per calibration step, the versioned file."""
