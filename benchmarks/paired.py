"""Paired per-seed differences between the segmentation benchmark's methods, from results files.

The same seed means the same footage and the same initialisation for every method, so the
difference on a seed is free of the spread between seeds that the methods' means carry. Rows of one
belt are merged over several files (e.g. seeds 0-2 from one run, 3-4 from another), and a pair is
read on the seeds both of its methods have.

    .venv/bin/python -m benchmarks.paired segmentation_cpu_128px segmentation_cpu_128px_seeds34 \
        --belt crowded [--image-size 128] [--figures miou miou_object_threshold miou_best_threshold]
"""

from __future__ import annotations

import argparse
import json
import statistics

from benchmarks.common import RESULTS_DIR

PAIRS = [
    ("puzzlecam", "cam"), ("ours", "cam"), ("ours", "puzzlecam"), ("temporal", "cam"), ("gradcam", "cam"),
    ("puzzlecam_nopcls", "puzzlecam"), ("ours_nopcls", "ours"), ("ours_nopcls", "puzzlecam"),
    ("ours_meanfuse", "ours"), ("ours_meanfuse", "puzzlecam"), ("ours_temporal2", "ours"),
    ("ours_fixedtarget", "ours"), ("ours_fixedtarget", "puzzlecam"), ("ours_fixedtarget", "cam"),
    ("ours_beltflow", "ours"), ("ours_beltflow", "puzzlecam"),
    ("cam_balanced", "cam"), ("puzzlecam_balanced", "puzzlecam"), ("ours_balanced", "ours"),
    ("ours_balanced", "cam_balanced"), ("puzzlecam_1x2", "puzzlecam"), ("puzzlecam_2x1", "puzzlecam"),
    ("puzzlecam_os8", "cam_os8"), ("ours_os8", "cam_os8"), ("ours_os8", "puzzlecam_os8"),
    ("cam_os8", "cam"), ("puzzlecam_os8", "puzzlecam"), ("ours_os8", "ours"), ("ours_os8", "puzzlecam"),
]  # fmt: skip
FIGURES = {
    "miou": "masks' threshold",
    "miou_object_threshold": "the object check's threshold",
    "miou_objects": "whole objects",
    "miou_best_threshold": "the test frames' best threshold: no threshold error",
}
BySeed = dict[str, dict[int, dict]]  # method -> seed -> that seed's figures


def print_paired(by_seed: BySeed, figure: str) -> None:
    """Each pair's per-seed differences of `figure`, their mean and +- the standard error of it;
    nothing where no pair has both methods (a run of one row)."""
    lines = []
    for a, b in PAIRS:
        seeds = sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
        method = [by_seed[a][s].get(figure) for s in seeds]
        baseline = [by_seed[b][s].get(figure) for s in seeds]
        if not seeds or None in method or None in baseline:
            continue
        deltas = [x - y for x, y in zip(method, baseline, strict=True)]
        listed = ", ".join(f"{d:+.2f}" for d in deltas)
        error = f" +- {statistics.stdev(deltas) / len(deltas) ** 0.5:.2f}" if len(deltas) > 1 else ""
        lines.append(f"  {a} - {b}: mean {statistics.mean(deltas):+.2f}{error} (seeds {seeds}: {listed})")
    if lines:
        print(f"\npaired per-seed differences of mIoU ({FIGURES[figure]})", *lines, sep="\n")


def belt_rows(names: list[str], belt: str, image_size: int | None = None) -> list[tuple[str, dict]]:
    """(file name, row) for the rows of `belt` (and of `image_size`, where given) with per-seed
    figures in results/<name>.json, in the files' order (rows from before belts had names were on
    the standard belt; `--sim` probes left out); a clear stop where there are none."""
    found = []
    for name in names:
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            raise SystemExit(f"{path}: no such results file (give names as in benchmarks/results, no .json)")
        for row in json.loads(path.read_text(encoding="utf-8")):
            wanted = image_size is None or row.get("image_size") == image_size
            if row.get("belt", "standard") == belt and not row.get("sim") and "per_seed" in row and wanted:
                found.append((name, row))
    if not found:
        scale = f" at {image_size} px" if image_size else ""
        raise SystemExit(f"no rows of the {belt} belt{scale} with per-seed figures in {', '.join(names)}")
    return found


def one_scale(found: list[tuple[str, dict]], doing: str) -> int | None:
    """The input scale all `found` rows share; a clear stop where they hold several, since a seed's
    figures at 128 px and at 256 px are different experiments."""
    scales = {row.get("image_size") for _, row in found}
    if len(scales) > 1:
        listed = ", ".join(sorted({f"{name} ({row.get('image_size')} px)" for name, row in found}))
        raise SystemExit(
            f"the rows hold more than one input scale, which cannot be {doing}: {listed}; "
            "choose one with --image-size"
        )
    return scales.pop()


def read_by_seed(names: list[str], belt: str, image_size: int | None = None) -> BySeed:
    """Every method's per-seed figures on `belt` (at one input scale) in results/<name>.json, later
    files winning a seed both hold."""
    found = belt_rows(names, belt, image_size)
    one_scale(found, "paired")
    by_seed: BySeed = {}
    for _, row in found:
        by_seed.setdefault(row["method"], {}).update(zip(row["seeds"], row["per_seed"], strict=True))
    return by_seed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="+", help="results files (benchmarks/results/<NAME>.json)")
    parser.add_argument("--belt", default="standard")
    parser.add_argument("--image-size", type=int, help="only the rows of this input scale (px)")
    parser.add_argument("--figures", nargs="+", choices=list(FIGURES), default=list(FIGURES))
    args = parser.parse_args()
    by_seed = read_by_seed(args.names, args.belt, args.image_size)
    for figure in args.figures:
        print_paired(by_seed, figure)


if __name__ == "__main__":
    main()
