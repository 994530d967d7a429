"""Threshold rules read from stored curves: each rule picks from validation curves only and is scored
on the test curve against the rule the trainer uses."""

import json

import pytest

from benchmarks import threshold_rules
from trainer.evaluate import THRESHOLDS


def _figures(validation, test, sequences=None):
    """One seed's stored figures; `miou` is the test curve where the pooled rule picks."""
    chosen = max(range(len(THRESHOLDS)), key=lambda k: (validation[k], -abs(THRESHOLDS[k] - 0.5)))
    figures = {"miou": test[chosen], "validation_iou_by_threshold": validation}
    figures["test_miou_by_threshold"] = test
    if sequences is not None:
        figures["validation_miou_by_threshold"] = sequences
    return figures


def _peak(at: float, height: float = 50.0) -> list[float]:
    return [height - 100 * abs(t - at) for t in THRESHOLDS]


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(threshold_rules, "RESULTS_DIR", tmp_path)
    # the pooled validation curve peaks at 0.7, the sequences' mean at 0.4, the test frames at 0.4
    with_both = _figures(_peak(0.7), _peak(0.4), sequences=_peak(0.4))
    older = _figures(_peak(0.4), _peak(0.4))  # written before the sequences' curve existed
    rows = [{"method": "ours", "seeds": [0, 1], "per_seed": [with_both, older]},
            {"method": "cam", "seeds": [0], "per_seed": [31.5]}]  # fmt: skip
    (tmp_path / "segmentation_x.json").write_text(json.dumps(rows))
    (tmp_path / "segmentation_merged.json").write_text(json.dumps(rows[:1]))  # the same seeds again
    (tmp_path / "segmentation_probes.json").write_text(json.dumps({"summary": 1}))
    return tmp_path


def test_each_rule_is_scored_on_the_test_curve_against_the_current_rule(results):
    names = ["segmentation_x", "segmentation_probes", "segmentation_merged"]
    rows = {row["rule"]: row for row in threshold_rules.measure(names)}
    # the sequences' rule picks 0.4 where the pooled one picked 0.7: +30 on the one seed that has it
    assert rows["sequences"]["seeds"] == 1 and rows["sequences"]["change_mean"] == pytest.approx(30.0)
    assert rows["sequences"]["better"] == 1 and rows["sequences"]["worse"] == 0
    # 0.5 is 0.2 nearer the test peak than 0.7 on the first seed, 0.1 further from it on the second
    assert rows["fixed 0.5"]["seeds"] == 2
    assert rows["fixed 0.5"]["change_mean"] == pytest.approx((20 - 10) / 2)
    # a seed merged into another file counts once; seeds stored as bare figures (older files) are
    # left out, not misread
    assert all(row["method"] == "ours" for row in rows.values())


def test_a_missing_results_file_is_named(results):
    with pytest.raises(SystemExit, match=r"nothing\.json: no such results file"):
        threshold_rules.measure(["nothing"])
