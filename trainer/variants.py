"""Named variants of the trainable methods: the paper's four, and the switchable changes of tracker
issue 18 (benchmarks/README.md) that measured better on some belts and worse on others.

One name stands for one set of trainer settings, so the site file (`schedule.method`,
`schedule.candidates`), `beltcam train --method` and the segmentation benchmark mean the same thing
by it. Since no single setting wins on every belt, a site lists the variants it wants tried and its
own footage picks one: the nightly gate judges a variant's model exactly as it judges a method's.
"""

from __future__ import annotations

PAPER_METHODS = ("cam", "puzzlecam", "temporal", "ours")
DEFAULT_OUTPUT_STRIDE = 16  # the paper's: no stride in the last ResNet stage
LOSS_TERMS: dict[str, tuple[bool, bool]] = {  # (spatial module, temporal module)
    "gradcam": (False, False),
    "cam": (False, False),
    "puzzlecam": (True, False),
    "temporal": (False, True),
    "ours": (True, True),
}
CHANGES: dict[str, dict[str, object]] = {
    # the tiles' merged maps are not classified (no L_pcls), only their L1 to the full image's stays
    "puzzlecam_nopcls": {"method": "puzzlecam", "puzzle_classification": False},
    "ours_nopcls": {"method": "ours", "puzzle_classification": False},
    # L_spatial over the image's own classes' maps only, as PuzzleCAM's and the paper authors' code
    # do; with no L_pcls it is the authors' own training setting (their "cl_re" with "masking")
    "ours_present": {"method": "ours", "spatial_classes": "present"},
    "ours_nopcls_present": {"method": "ours", "puzzle_classification": False, "spatial_classes": "present"},
    # the warped neighbours' CAMs fused by mean instead of maximum (less spill onto touching objects)
    "ours_meanfuse": {"method": "ours", "temporal_fusion": "mean"},
    # class maps at stride 8: a 128 px input gets the 16 cells across the temporal term needs
    "ours_os8": {"method": "ours", "output_stride": 8},
}
VARIANTS = PAPER_METHODS + tuple(CHANGES)  # what a site may train every night


def variant_settings(name: str) -> dict[str, object]:
    """The `TrainSettings` fields a variant (or a plain method, e.g. `gradcam`) stands for."""
    return dict(CHANGES.get(name, {"method": name}))


def uses_temporal_term(name: str) -> bool:
    """Whether a variant trains with L_temporal, which needs class maps fine enough for an object to
    span several cells (benchmarks/README.md: on maps 8 cells across it costs on a crowded belt)."""
    return LOSS_TERMS[str(variant_settings(name)["method"])][1]


def class_map_cells(name: str, image_size: int) -> int:
    """How many cells across the class maps of a variant trained at `image_size` have."""
    return image_size // int(variant_settings(name).get("output_stride", DEFAULT_OUTPUT_STRIDE))
