"""What a training run directory tells the panel: per-epoch losses, planned epochs, final metrics and
the tail of its log, as the trainer writes them (`trainer.train`'s module doc).

The panel reads these files while the trainer is writing them, and nothing read from disk is
trusted: a half-written last line of `epochs.jsonl` is skipped, a file that is not JSON counts as
missing, and only the end of a large log is read, so a page never fails or stalls on a run folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

EPOCHS_FILE = "epochs.jsonl"
SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train.log"
LOG_TAIL_BYTES = 16_384
MAX_JSON_BYTES = 4 * 1024 * 1024  # far more than any run writes; a stray huge file is not parsed
# bookkeeping fields of an epoch's record; every other number is a loss term (trainer `_step_losses`)
NOT_LOSSES = {"epoch", "samples", "seconds", "frames_per_s", "a", "b"}


@dataclass
class RunFiles:
    epochs: list[dict] = field(default_factory=list)  # one record per finished epoch, in order
    planned_epochs: int | None = None  # settings.json's `epochs`
    metrics: dict | None = None

    @property
    def epochs_done(self) -> int:
        return int(self.epochs[-1]["epoch"]) if self.epochs else 0

    @property
    def fraction_done(self) -> float | None:
        if not self.planned_epochs:
            return None
        return min(1.0, self.epochs_done / self.planned_epochs)

    def loss_series(self) -> dict[str, list[tuple[float, float]]]:
        """Per loss term (and their sum, the loss the trainer minimises), (epoch, mean loss) points."""
        series: dict[str, list[tuple[float, float]]] = {}
        for record in self.epochs:
            terms = {k: v for k, v in record.items() if k not in NOT_LOSSES and _finite(v)}
            if not terms:
                continue
            if len(terms) > 1:
                series.setdefault("total", []).append((record["epoch"], sum(terms.values())))
            for name, value in terms.items():
                series.setdefault(name, []).append((record["epoch"], float(value)))
        return series


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_file(path: Path) -> dict | None:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_epochs(path: Path) -> list[dict]:
    """The epoch records, skipping any line that is not a whole record (the trainer may be writing)."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _finite(record.get("epoch")):
            records.append(record)
    return records


def read_run(run_dir: Path) -> RunFiles:
    settings = _json_file(run_dir / SETTINGS_FILE) or {}
    planned = settings.get("epochs")
    return RunFiles(
        epochs=read_epochs(run_dir / EPOCHS_FILE),
        planned_epochs=planned if isinstance(planned, int) and planned > 0 else None,
        metrics=_json_file(run_dir / METRICS_FILE),
    )


def log_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The end of a log file (whole lines only), '' when there is none."""
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - max_bytes))
            data = stream.read(max_bytes)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(data) == max_bytes and size > max_bytes:
        text = text.partition("\n")[2]  # the first line was cut
    return text


def run_miou(metrics: dict | None) -> float | None:
    """The run's mIoU on the masks' test frames (0-100), when it was measured."""
    evaluation = (metrics or {}).get("evaluation")
    miou = evaluation.get("miou") if isinstance(evaluation, dict) else None
    return float(miou) if _finite(miou) else None
