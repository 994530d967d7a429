"""The segmentation benchmark refuses bad options before anything trains (a run lasts up to hours),
naming the option and the row, and shows the trainer's epochs while it trains."""

import logging
import re

import pytest

from benchmarks import segmentation


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--image-size", "100"], r"image size 100 .* must be a multiple of 32.*try 96 \(row cam\)"),
        (["--image-size", "8"], r"--image-size: Input should be greater than or equal to 32 \(row cam\)"),
        (["--epochs", "0"], r"--epochs: Input should be greater than or equal to 1 \(row cam\)"),
        (
            ["--sim", "classes_differ_by=bogus"],
            r"--sim classes_differ_by: Input should be 'colour' or 'shape'",
        ),
        (["--sequences", "0"], r"--sequences: 0 is out of range: must be > 0"),
        (["--frame-size", "0", "120"], r"--frame-size: 0 is out of range"),
        (["--masked", "1"], r"--masked: 1 is out of range: must be >= 3"),  # no whole sequence to validate on
    ],
)
def test_bad_options_are_usage_errors_before_training(options, said, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(segmentation, "run_seed", lambda *a: trained.append(a))
    monkeypatch.setattr("sys.argv", ["segmentation", "--seeds", "0", "--rows", "cam", *options])
    with pytest.raises(SystemExit) as stopped:
        segmentation.main()
    assert stopped.value.code == 2 and not trained
    assert "Traceback" not in (err := capsys.readouterr().err)
    assert re.search(said, err)


def test_a_run_shows_the_trainers_epochs_while_it_trains(monkeypatch, capsys):
    """A row trains for up to an hour without progress bars: the trainer's epoch lines are what says
    it is alive, and they stop showing once the benchmark is done."""

    class Trained(Exception):
        pass

    def one_epoch(*_):
        logging.getLogger("trainer.train").info("epoch %s", {"epoch": 1, "seconds": 12.5})
        raise Trained

    monkeypatch.setattr(segmentation, "run_seed", one_epoch)
    monkeypatch.setattr("sys.argv", ["segmentation", "--seeds", "0", "--rows", "cam"])
    with pytest.raises(Trained):
        segmentation.main()
    assert re.search(r"\d\d:\d\d:\d\d epoch \{'epoch': 1, 'seconds': 12.5\}", capsys.readouterr().err)
    logging.getLogger("trainer.train").info("epoch %s", {"epoch": 2})
    assert "epoch" not in capsys.readouterr().err
