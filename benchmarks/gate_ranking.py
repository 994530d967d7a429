"""Does the nightly gate rank models as ground truth would? On the simulated belt, models of
different quality (methods x epochs) are scored by what the gate uses on a site without masks, the
removal-based object check's F1 on held-out C1/C2 footage, and by the truth, mIoU against the
simulator's masks on held-out masked C1 frames; both through the gate's own evaluation of the
exported ONNX files. Reported: each model's two figures and the rank correlations (Spearman,
Kendall) between them.

    .venv/bin/python -m benchmarks.gate_ranking [--methods cam ours] [--epochs 1 2 4] [--size 128]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from benchmarks.common import describe_machine, run_record, training_progress, write_results
from edge.nightly.gate import held_out_evaluation
from edge.simulator.dataset import write_simulated_manifest
from trainer.train import TrainSettings, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["cam", "ours"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, default=128, help="network input's long side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-s", type=float, default=60.0, help="held-out belt footage (objects)")
    parser.add_argument("--masked", type=int, default=6, help="C1 sequences with masks (the truth)")
    args = parser.parse_args()
    rows = []
    with training_progress(), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = write_simulated_manifest(
            root / "frames", frames=16, size=(320, 240), sequences=4, masked_before=args.masked,
            seed=args.seed + 1000, objects_per_m=6.0, holdout_s=args.holdout_s,
        )  # fmt: skip
        for method in args.methods:
            for epochs in args.epochs:
                settings = TrainSettings(
                    method=method, backbone="resnet18", image_size=args.size, epochs=epochs, batch_size=8,
                    weights="random", seed=args.seed,
                )  # fmt: skip
                run_dir = root / f"{method}-{epochs}"
                result = train(manifest, settings, run_dir, cache_dir=root / "cache", progress=False)
                found = held_out_evaluation(run_dir, result.onnx_path)
                rows.append({
                    "method": method, "epochs": epochs, "true_miou": found.miou,
                    "object_f1": round(100 * found.object_check["f1"], 2),
                    "object_auc": found.object_check["auc"],
                    "object_precision": found.object_check["precision"],
                    "object_recall": found.object_check["recall"],
                    "test_objects": found.object_check["test_objects"],
                    "true_miou_test_frames": found.test_frames,
                })  # fmt: skip
                print(rows[-1], flush=True)
    truth = [r["true_miou"] for r in rows]
    summary = {"models": len(rows), "machine": describe_machine(), "holdout_s": args.holdout_s}
    for measure in ("object_f1", "object_auc"):
        gate = [r[measure] for r in rows]
        summary[f"spearman_{measure}"] = round(float(spearmanr(truth, gate).statistic), 3)
        summary[f"kendall_{measure}"] = round(float(kendalltau(truth, gate).statistic), 3)
    name = f"gate_ranking_holdout{args.holdout_s:g}s_masked{args.masked}"
    write_results(name, {"rows": rows, **summary})
    write_results(f"{name}_run", run_record(**vars(args)))
    print(f"\ngate ranking on the simulated belt ({describe_machine()}), ResNet-18 at {args.size} px, "
          f"{args.holdout_s:g} s held out")  # fmt: skip
    print(f"{'method':>8} {'epochs':>6} {'true mIoU':>9} {'object F1':>9} {'object AUC':>10}")
    for r in rows:
        print(f"{r['method']:>8} {r['epochs']:>6} {r['true_miou']:>9.2f} {r['object_f1']:>9.2f} "
              f"{r['object_auc']!s:>10}")  # fmt: skip
    for measure in ("object_f1", "object_auc"):
        print(f"rank correlation with true mIoU, {measure}: Spearman {summary[f'spearman_{measure}']}, "
              f"Kendall {summary[f'kendall_{measure}']} ({len(rows)} models)")  # fmt: skip


if __name__ == "__main__":
    main()
