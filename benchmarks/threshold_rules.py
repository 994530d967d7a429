"""Whether another rule for choosing the mask threshold on the validation frames would score better
on the test frames, measured on the curves the segmentation benchmark already stored.

The exported threshold is the best of the validation frames' pooled IoU (trainer.evaluate). With a
few validation sequences that choice is noisy: it costs ours 1-1.5 mIoU against the test frames'
own best. Each rule below reads only validation curves; its figure is the stored test curve at the
threshold it picks, paired per seed with the current rule's, so no model is retrained:
  pooled      the current rule: pooled IoU over the validation frames
  sequences   the validation sequences' mean IoU, the statistic the test figure is (runs since the
              field `validation_miou_by_threshold` was added)
  smooth1, smooth2  the pooled curve averaged over 1 / 2 neighbouring thresholds each side first
  fixed 0.5   no choice at all

    .venv/bin/python -m benchmarks.threshold_rules [--files segmentation_hard_footage_seed0 ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import numpy as np

from benchmarks.common import RESULTS_DIR, describe_machine, run_record, write_results
from trainer.evaluate import THRESHOLDS, best_threshold_index

METHODS = ("cam", "f2f", "gradcam", "puzzlecam", "temporal", "ours")
Curve = list[float | None]


def _curve(values: Curve) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], float)


def _smoothed(values: Curve, reach: int) -> np.ndarray:
    curve = _curve(values)
    windows = [curve[max(0, k - reach) : k + reach + 1] for k in range(len(curve))]
    return np.array([np.nanmean(w) if not np.isnan(w).all() else np.nan for w in windows])


# rule name -> (which stored validation curve it reads, how it picks an index from it)
RULES: dict[str, tuple[str, Callable[[Curve], int]]] = {
    "sequences": ("validation_miou_by_threshold", lambda v: best_threshold_index(_curve(v))),
    "smooth1": ("validation_iou_by_threshold", lambda v: best_threshold_index(_smoothed(v, 1))),
    "smooth2": ("validation_iou_by_threshold", lambda v: best_threshold_index(_smoothed(v, 2))),
    "fixed 0.5": ("validation_iou_by_threshold", lambda v: THRESHOLDS.index(0.5)),
}


def _per_seed_records(names: list[str]) -> list[tuple[str, dict]]:
    """(method, one seed's figures) for every stored seed that has both curves, each once: a seed
    merged into another file (benchmarks/merge_seeds.py) is the same record twice."""
    records: dict[tuple, tuple[str, dict]] = {}
    for name in names:
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            raise SystemExit(f"{path}: no such results file (give names as in benchmarks/results, no .json)")
        rows = json.loads(path.read_text(encoding="utf-8"))
        for row in rows if isinstance(rows, list) else []:  # a dict: a probes summary, no seeds
            for figures in row.get("per_seed", []):
                if curves := _curves(figures):
                    records[(row["method"], *curves)] = (row["method"], figures)
    return list(records.values())


def _curves(figures: dict | float) -> tuple[tuple, tuple] | None:
    """A seed's validation and test curves; None where it has none (older files kept a bare mIoU)."""
    if not isinstance(figures, dict):
        return None
    validation, test = figures.get("validation_iou_by_threshold"), figures.get("test_miou_by_threshold")
    return (tuple(validation), tuple(test)) if validation and test else None


def measure(names: list[str]) -> list[dict]:
    """Per method and rule: the change of test mIoU against the current rule, over every stored seed."""
    changes: dict[tuple[str, str], list[float]] = {}
    for method, figures in _per_seed_records(names):
        test = figures["test_miou_by_threshold"]
        for rule, (curve, pick) in RULES.items():
            if figures.get(curve):
                changes.setdefault((method, rule), []).append(test[pick(figures[curve])] - figures["miou"])
    kept = sorted((key, deltas) for key, deltas in changes.items() if key[0] in METHODS)
    return [_row(method, rule, deltas) for (method, rule), deltas in kept]


def _row(method: str, rule: str, deltas: list[float]) -> dict:
    error = round(statistics.stdev(deltas) / len(deltas) ** 0.5, 2) if len(deltas) > 1 else None
    return {
        "method": method, "rule": rule, "seeds": len(deltas),
        "change_mean": round(statistics.mean(deltas), 2), "change_se": error,
        "better": sum(d > 0 for d in deltas), "worse": sum(d < 0 for d in deltas),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = sorted(
        path.stem for path in RESULTS_DIR.glob("segmentation*.json") if not path.stem.endswith("_run")
    )
    parser.add_argument("--files", nargs="+", default=default, help="results files, no .json")
    parser.add_argument("--out", default="threshold_rules")
    args = parser.parse_args()
    rows = measure(args.files)
    print(f"threshold rules against the current one (pooled validation IoU), {describe_machine()}")
    print(f"{'method':>10} {'rule':>10} {'seeds':>6} {'change':>8} {'+-':>6} {'better':>7} {'worse':>6}")
    for row in rows:
        error = "-" if row["change_se"] is None else f"{row['change_se']:.2f}"
        print(f"{row['method']:>10} {row['rule']:>10} {row['seeds']:6d} {row['change_mean']:+8.2f} "
              f"{error:>6} {row['better']:7d} {row['worse']:6d}")  # fmt: skip
    write_results(args.out, rows)
    write_results(f"{args.out}_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
