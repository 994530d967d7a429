"""When the nightly loop runs: APScheduler inside the agent, its job kept in the site database.

The job store is the site database (`apscheduler_jobs`), so a restarted agent knows when the next
night is and whether one was missed; a night missed while the agent was down runs once when it
comes back within the window (`coalesce`, `misfire_grace_time` = the window), never twice at a time
(`max_instances=1`). The job launches `beltcam nightly` as a separate process at a lowered CPU and
I/O priority: training never shares the live path's interpreter, a crash of it never takes the agent
down, and a stopped agent stops it (SIGTERM: the run is `interrupted` and resumes the next night).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine
from tzlocal import get_localzone

from edge.config import ScheduleConfig
from edge.store.processes import nightly_command

log = logging.getLogger(__name__)
JOB_ID = "nightly"
JOB_TABLE = "apscheduler_jobs"
JOB_FUNCTION = f"{__name__}:launch_night"  # stored by name: found again after an upgrade moves code
STOP_GRACE_S = 60.0  # a night still training this long after its window closed is stopped
_children: set[subprocess.Popen] = set()  # nights running now, stopped with the agent
_children_lock = threading.Lock()


def zone(schedule: ScheduleConfig):
    """The schedule's time zone: the site file's, else the machine's."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(schedule.timezone) if schedule.timezone else get_localzone()


def window_end(cron: str, timezone: str | None, window_h: float, now: datetime) -> datetime | None:
    """The end of the training window `now` is in (the window opens at each cron time and lasts
    `window_h`), or None when `now` is outside every window."""
    trigger = CronTrigger.from_crontab(cron, timezone=zone(ScheduleConfig(timezone=timezone)))
    length = timedelta(hours=window_h)
    opened = trigger.get_next_fire_time(None, now - length)
    if opened is None or opened > now:
        return None
    return opened + length


def launch_night(config_path: str, cron: str, timezone: str | None, window_h: float) -> int | None:
    """The job: run `beltcam nightly` for what is left of the window; returns its exit code (None
    when the window had already closed)."""
    now = datetime.now(zone(ScheduleConfig(timezone=timezone)))
    end = window_end(cron, timezone, window_h, now)
    if end is None:
        log.info("nightly: the training window has closed: next night")
        return None
    hours = (end - now).total_seconds() / 3600
    command = nightly_command(config_path, hours)
    log.info("nightly: training window open until %s: %s", end.strftime("%H:%M %Z"), " ".join(command[2:]))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with _children_lock:
        _children.add(child)
    try:
        output, _ = child.communicate(timeout=hours * 3600 + STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.terminate()
        output, _ = child.communicate()
        log.warning("nightly: still running %.0f s after its window: stopped", STOP_GRACE_S)
    finally:
        with _children_lock:
            _children.discard(child)
    last = next((line for line in reversed((output or "").splitlines()) if line.strip()), "")
    log.info("nightly: %s (exit %s)", last or "no output", child.returncode)
    return child.returncode


class NightlyScheduler:
    """The agent's nightly timer (see the module doc)."""

    def __init__(self, schedule: ScheduleConfig, config_path: Path, engine: Engine) -> None:
        self.schedule = schedule
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(schedule.window_h * 3600),
            },
            timezone=zone(schedule),
        )
        self.config_path = str(config_path.resolve())

    def start(self) -> datetime | None:
        """Start the timer; returns when the next night begins (a night missed while the agent was
        down, when its window is still open)."""
        self.scheduler.start(paused=True)
        trigger = CronTrigger.from_crontab(self.schedule.nightly_cron, timezone=zone(self.schedule))
        args = [self.config_path, self.schedule.nightly_cron, self.schedule.timezone, self.schedule.window_h]
        job = self.scheduler.get_job(JOB_ID)
        if job is None or str(job.trigger) != str(trigger) or list(job.args) != args:
            # new, or the site file has another time: the stored job gives way
            job = self.scheduler.add_job(
                JOB_FUNCTION, trigger, args=args, id=JOB_ID, name="nightly retraining", replace_existing=True
            )
        self.scheduler.resume()  # a stored job whose time passed fires now, once, within the window
        return job.next_run_time

    def stop(self) -> None:
        """Stop the timer and any night running now (it resumes the next night)."""
        with _children_lock:
            for child in _children:
                child.terminate()
        # APScheduler's thread looks for due jobs once more after a shutdown: without its job store it
        # finds none, so a night due right now stays due, for the next start, instead of being lost
        self.scheduler.pause()
        self.scheduler.remove_jobstore("default")
        self.scheduler.shutdown(wait=False)
