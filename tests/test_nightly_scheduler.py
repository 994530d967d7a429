"""The nightly timer: its window in the site's time zone, its job kept in the site database across
agent restarts (a missed night runs once when the agent is back within the window), and a night
launched as `beltcam nightly` that says why it did not train."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect

from edge.config import ConfigError, ScheduleConfig, load_config
from edge.nightly.scheduler import JOB_ID, JOB_TABLE, NightlyScheduler, launch_night, window_end

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_window_is_open_from_the_cron_time_for_its_length_in_the_sites_zone():
    def end(hour: int, minute: int = 0):
        return window_end(
            "0 2 * * *", "Europe/Berlin", 4.0, datetime(2026, 11, 28, hour, minute, tzinfo=BERLIN)
        )

    assert end(1, 59) is None  # not open yet
    assert end(2) == datetime(2026, 11, 28, 6, tzinfo=BERLIN)
    assert end(5, 30) == datetime(2026, 11, 28, 6, tzinfo=BERLIN)
    assert end(6, 1) is None  # closed
    # 02:00 in Berlin is 01:00 UTC in winter: the same instant asked in UTC
    assert window_end(
        "0 2 * * *", "Europe/Berlin", 4.0, datetime(2026, 11, 28, 1, 30, tzinfo=UTC)
    ) == datetime(2026, 11, 28, 6, tzinfo=BERLIN)


def test_the_job_is_kept_in_the_site_database_and_a_new_time_replaces_it(store, tmp_path):
    config_path = tmp_path / "beltcam.yaml"
    schedule = ScheduleConfig(nightly_cron="30 1 * * *", timezone="Europe/Berlin", window_h=3)
    first = NightlyScheduler(schedule, config_path, store.engine)
    next_night = first.start()
    first.stop()
    assert next_night.tzinfo is not None and (next_night.hour, next_night.minute) == (1, 30)
    assert JOB_TABLE in inspect(store.engine).get_table_names()

    again = NightlyScheduler(schedule, config_path, store.engine)  # the agent restarted
    assert again.start() == next_night  # the stored job, not a new one
    stored = again.scheduler.get_job(JOB_ID)
    assert (stored.coalesce, stored.max_instances, stored.misfire_grace_time) == (True, 1, 3 * 3600)
    again.stop()

    moved = NightlyScheduler(
        schedule.model_copy(update={"nightly_cron": "0 3 * * *"}), config_path, store.engine
    )
    assert moved.start().hour == 3  # the site file's new time wins
    moved.stop()


def test_a_night_missed_while_the_agent_was_down_runs_once_when_it_is_back(store, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("edge.nightly.scheduler.launch_night", lambda *args: calls.append(args))
    now = datetime.now(UTC)
    cron = f"{(now - timedelta(minutes=5)).minute} {(now - timedelta(minutes=5)).hour} * * *"
    schedule = ScheduleConfig(nightly_cron=cron, timezone="UTC", window_h=1)
    down = NightlyScheduler(schedule, tmp_path / "beltcam.yaml", store.engine)
    down.start()
    down.scheduler.pause()  # the agent is down from here: nothing it holds runs
    down.scheduler.modify_job(JOB_ID, next_run_time=now - timedelta(minutes=5))  # due while it was down
    down.stop()  # and what is due stays due
    back = NightlyScheduler(schedule, tmp_path / "beltcam.yaml", store.engine)
    back.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not calls and datetime.now(UTC) < deadline:
        time.sleep(0.05)
    back.stop()
    assert len(calls) == 1


def test_a_launched_night_without_footage_says_why_it_did_not_train(write_config, caplog):
    path = write_config({"schedule": {"nightly_cron": "* * * * *", "window_h": 1}})
    caplog.set_level("INFO", logger="edge.nightly.scheduler")
    assert launch_night(str(path), "* * * * *", "UTC", 1.0) == 0
    assert "night skipped: 0 new before/after frames since the last nightly run" in caplog.text


def test_a_zone_that_does_not_exist_is_named(write_config):
    path = write_config({"schedule": {"timezone": "Europe/Atlantis"}})
    with pytest.raises(ConfigError, match=r"schedule.timezone: .*unknown time zone 'Europe/Atlantis'"):
        load_config(path)


def test_impossible_windows_and_margins_are_refused_where_typed(write_config, capsys):
    from edge.cli.main import main

    path = write_config()
    assert main(["nightly", "--config", str(path), "--window-h", "1e9"]) == 2
    assert "--window-h: 1e9 is out of range: must be > 0 and <= 24" in capsys.readouterr().err
    bad = write_config({"schedule": {"gate": {"margin": float("nan")}}}, name="nan.yaml")
    with pytest.raises(ConfigError, match=r"schedule.gate.margin: .*finite"):
        load_config(bad)
