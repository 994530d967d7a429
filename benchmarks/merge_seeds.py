"""The segmentation benchmark's rows from several runs (a seed or a few rows per run, as a 2-core
machine runs them within a session) merged into one results file as if one run had made them: each
method's seeds gathered over the files (later files win a seed both hold), the means recomputed, and
the target file's other rows (other belts, other input scales, other methods) kept.

    .venv/bin/python -m benchmarks.merge_seeds segmentation_hard_footage_seed0 \
        segmentation_hard_footage_seed1 segmentation_hard_footage_seed2 --belt hard --into segmentation

Training speeds are each run's own (a row's mean stands for each of its seeds): runs that shared the
machine are not comparable by them.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import RESULTS_DIR, run_record, write_results
from benchmarks.paired import BySeed, belt_rows, one_scale, print_paired
from benchmarks.segmentation import print_table, rows_kept, summary_rows


def merge(names: list[str], belt: str, image_size: int | None = None) -> tuple[list[dict], BySeed]:
    """The merged rows of `belt` (at `image_size`, where given) in the files `names`, and each
    method's figures by seed."""
    found = belt_rows(names, belt, image_size)
    scale = one_scale(found, "merged")
    run = _one_run(found)
    by_seed: BySeed = {}
    speed_by_seed: dict[str, dict[int, float]] = {}
    for _, row in found:
        by_seed.setdefault(row["method"], {}).update(zip(row["seeds"], row["per_seed"], strict=True))
        if (speed := row.get("train_frames_per_s")) is not None:
            speed_by_seed.setdefault(row["method"], {}).update(dict.fromkeys(row["seeds"], speed))
    speeds = {method: list(by.values()) for method, by in speed_by_seed.items()}
    return summary_rows(by_seed, speeds, belt, {}, scale, run), by_seed


def _one_run(found: list[tuple[str, dict]]) -> dict | None:
    """The footage and budget all merged rows were made with: seeds trained on other footage or for
    other epochs are other experiments. Rows from before rows recorded it merge as unknown (None)."""
    runs = {json.dumps(row.get("run"), sort_keys=True): row.get("run") for _, row in found}
    if len(runs) > 1:
        listed = "; ".join(sorted({f"{name}: {json.dumps(row.get('run'))}" for name, row in found}))
        raise SystemExit(
            f"the rows were made by runs of different settings, which cannot be merged: {listed}"
        )
    return runs.popitem()[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="+", help="results files (benchmarks/results/<NAME>.json), no .json")
    parser.add_argument("--belt", default="standard")
    parser.add_argument("--image-size", type=int, help="only the rows of this input scale (px)")
    parser.add_argument(
        "--into", required=True,
        help="results/<INTO>.json: the merged rows replace its rows of the same belt, scale and methods",
    )  # fmt: skip
    args = parser.parse_args()
    rows, by_seed = merge(args.names, args.belt, args.image_size)
    seeds = sorted({seed for by in by_seed.values() for seed in by})
    print_table(rows, f"seeds {seeds} from {', '.join(args.names)}")
    for figure in ("miou", "miou_best_threshold"):
        print_paired(by_seed, figure)
    write_results(args.into, rows_kept(args.into, args.belt, rows[0]["image_size"], rows) + rows)
    log_merge(f"{args.into}_merge_{args.belt}_{rows[0]['image_size']}px_run", run_record(**vars(args)))


def log_merge(name: str, record: dict) -> None:
    """Add `record` to the merges listed in `results/<name>.json`: several merges fill one belt and
    scale of a file (the stride-16 rows from one set of runs, the stride-8 rows from another), and
    each must stay traceable. A merge of the same files again replaces its earlier record; a file
    written before merges were listed holds one merge."""
    path = RESULTS_DIR / f"{name}.json"
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"merges": []}
    merges = earlier.get("merges", [earlier])
    kept = [merge for merge in merges if merge["names"] != record["names"]]
    write_results(name, {"merges": [*kept, record]})


if __name__ == "__main__":
    main()
