"""Paired differences read from the segmentation benchmark's results files: seeds merged over
files, a pair read only on the seeds both methods have, the standard error printed with the mean."""

import json

import pytest

from benchmarks import paired


def _row(method, seeds, mious, belt="crowded", **extra):
    per_seed = [{"miou": m, "miou_best_threshold": m + 1.0} for m in mious]
    return {"belt": belt, "sim": {}, "method": method, "seeds": seeds, "per_seed": per_seed, **extra}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(paired, "RESULTS_DIR", tmp_path)
    first = [_row("cam", [0, 1], [30.0, 40.0]), _row("ours", [0, 1], [35.0, 41.0]),
             _row("ours", [0, 1], [99.0, 99.0], belt="standard"),
             _row("ours", [0], [99.0], sim={"classes_differ_by": "shape"})]  # fmt: skip
    later = [_row("cam", [2], [20.0]), _row("ours", [2], [26.0])]
    (tmp_path / "first.json").write_text(json.dumps(first))
    (tmp_path / "later.json").write_text(json.dumps(later))
    return tmp_path


def test_seeds_merge_over_files_and_other_belts_and_probes_stay_out(results):
    by_seed = paired.read_by_seed(["first", "later"], "crowded")
    assert sorted(by_seed["ours"]) == [0, 1, 2]
    assert [by_seed["ours"][s]["miou"] for s in (0, 1, 2)] == [35.0, 41.0, 26.0]


def test_a_pair_prints_each_seeds_difference_its_mean_and_standard_error(results, capsys):
    paired.print_paired(paired.read_by_seed(["first", "later"], "crowded"), "miou")
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("ours - cam"))
    # differences +5, +1, +6: mean 4, standard deviation 2.646, standard error 1.53
    assert "mean +4.00 +- 1.53" in line and "+5.00, +1.00, +6.00" in line


def test_a_figure_some_seeds_lack_is_not_paired(results, capsys):
    by_seed = paired.read_by_seed(["first"], "crowded")
    del by_seed["cam"][1]["miou_best_threshold"]  # a file written before the figure existed
    paired.print_paired(by_seed, "miou_best_threshold")
    assert "ours - cam" not in capsys.readouterr().out


def test_a_run_of_one_method_prints_no_empty_heading(results, capsys):
    by_seed = paired.read_by_seed(["first"], "crowded")
    paired.print_paired({"ours": by_seed["ours"]}, "miou")
    assert capsys.readouterr().out == ""
    paired.print_paired(by_seed, "miou")
    assert "paired per-seed differences of mIoU" in capsys.readouterr().out


def test_a_missing_results_file_is_named(results):
    with pytest.raises(SystemExit, match=r"nothing\.json: no such results file"):
        paired.read_by_seed(["nothing"], "crowded")
