"""Segmentation rows from runs of one seed (or a few rows) each, merged into one results file: means
recomputed over the gathered seeds, the target's rows of other belts and input scales kept."""

import json

import pytest

from benchmarks import merge_seeds, paired, segmentation


def _row(method, seeds, mious, belt="hard", image_size=128, speed=10.0, run=None):
    per_seed = [{"miou": m, "threshold": 0.5, "miou_best_threshold": m + 1.0} for m in mious]
    return {"belt": belt, "sim": {}, "image_size": image_size, "run": run, "method": method,
            "miou": sum(mious) / len(mious), "seeds": seeds, "per_seed": per_seed,
            "train_frames_per_s": speed}  # fmt: skip


@pytest.fixture
def results(tmp_path, monkeypatch):
    for module in (paired, segmentation, merge_seeds):
        monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr("benchmarks.common.RESULTS_DIR", tmp_path)
    files = {
        "seed0": [_row("cam", [0], [30.0], speed=100.0), _row("ours", [0], [33.0], speed=30.0)],
        "seed1": [_row("cam", [1], [20.0], speed=120.0), _row("ours", [1], [24.0], speed=34.0)],
        "target": [_row("ours", [0], [99.0]), _row("ours", [0], [50.0], image_size=256),
                   _row("ours", [0], [60.0], belt="standard")],
    }  # fmt: skip
    for name, rows in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    return tmp_path


def test_seeds_of_several_runs_become_one_row_per_method(results):
    rows, by_seed = merge_seeds.merge(["seed0", "seed1"], "hard")
    ours = next(row for row in rows if row["method"] == "ours")
    assert ours["seeds"] == [0, 1] and [f["miou"] for f in ours["per_seed"]] == [33.0, 24.0]
    assert ours["miou"] == 28.5 and ours["miou_std"] == 4.5 and ours["miou_best_threshold"] == 29.5
    assert ours["train_frames_per_s"] == 32.0 and ours["image_size"] == 128
    assert [row["method"] for row in rows] == ["cam", "ours"]  # the benchmark's row order
    assert by_seed["cam"][1]["miou"] == 20.0


def test_merged_rows_replace_only_their_own_belt_scale_and_methods(results, monkeypatch):
    monkeypatch.setattr("sys.argv", ["merge_seeds", "seed0", "seed1", "--belt", "hard", "--into", "target"])
    merge_seeds.main()
    stored = json.loads((results / "target.json").read_text())
    kept = {(row["belt"], row["image_size"], row["method"]): row["miou"] for row in stored}
    assert kept == {
        ("hard", 256, "ours"): 50.0,  # another input scale
        ("standard", 128, "ours"): 60.0,  # another belt
        ("hard", 128, "ours"): 28.5,  # replaced: the old 99.0 is gone
        ("hard", 128, "cam"): 25.0,
    }


def test_each_merge_into_a_belt_and_scale_stays_on_record(results, monkeypatch):
    log = results / "target_merge_hard_128px_run.json"
    log.write_text(json.dumps({"names": ["older"], "belt": "hard"}))  # a record from before the list
    for names in (["seed0", "seed1"], ["seed1"], ["seed0", "seed1"]):  # the first again last
        monkeypatch.setattr("sys.argv", ["merge_seeds", *names, "--belt", "hard", "--into", "target"])
        merge_seeds.main()
    merges = json.loads(log.read_text())["merges"]
    assert [merge["names"] for merge in merges] == [["older"], ["seed1"], ["seed0", "seed1"]]


def test_files_of_different_input_scales_are_refused_by_name(results):
    (results / "big.json").write_text(json.dumps([_row("ours", [2], [40.0], image_size=256)]))
    with pytest.raises(SystemExit, match=r"more than one input scale.*big \(256 px\).*seed0 \(128 px\)"):
        merge_seeds.merge(["seed0", "big"], "hard")


def test_no_rows_of_the_belt_is_an_error_naming_the_files(results):
    with pytest.raises(SystemExit, match="no rows of the crowded belt with per-seed figures in seed0"):
        merge_seeds.merge(["seed0"], "crowded")


def test_one_input_scale_is_chosen_from_a_file_holding_two(results):
    rows, _ = merge_seeds.merge(["target"], "hard", image_size=256)
    assert [(row["image_size"], row["miou"]) for row in rows] == [(256, 50.0)]
    with pytest.raises(SystemExit, match=r"no rows of the hard belt at 96 px"):
        merge_seeds.merge(["target"], "hard", image_size=96)


def test_paired_refuses_to_mix_input_scales_and_reads_the_one_asked_for(results, monkeypatch, capsys):
    (results / "both.json").write_text(json.dumps([
        _row("cam", [0, 1], [30.0, 20.0]), _row("ours", [0, 1], [33.0, 24.0]),
        _row("cam", [0, 1], [10.0, 10.0], image_size=256), _row("ours", [0, 1], [15.0, 13.0], image_size=256),
    ]))  # fmt: skip
    monkeypatch.setattr("sys.argv", ["paired", "both", "--belt", "hard", "--figures", "miou"])
    with pytest.raises(SystemExit, match=r"more than one input scale.*choose one with --image-size"):
        paired.main()
    monkeypatch.setattr(
        "sys.argv", ["paired", "both", "--belt", "hard", "--image-size", "256", "--figures", "miou"]
    )
    paired.main()
    assert "ours - cam: mean +4.00 +- 1.00 (seeds [0, 1]: +5.00, +3.00)" in capsys.readouterr().out


def test_the_run_settings_travel_with_the_rows_and_runs_of_other_settings_are_refused(results):
    long_footage = {"epochs": 6, "sequences": 64}
    for seed in (0, 1):
        rows = [_row("ours", [seed], [30.0 + seed], run=long_footage)]
        (results / f"long{seed}.json").write_text(json.dumps(rows))
    rows, _ = merge_seeds.merge(["long0", "long1"], "hard")
    assert rows[0]["run"] == long_footage and rows[0]["seeds"] == [0, 1]
    short = [_row("ours", [2], [20.0], run={"epochs": 6, "sequences": 4})]
    (results / "short.json").write_text(json.dumps(short))
    with pytest.raises(
        SystemExit, match=r"runs of different settings.*long0: .*\"sequences\": 64.*short: .*4"
    ):
        merge_seeds.merge(["long0", "short"], "hard")
