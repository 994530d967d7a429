"""Training beside the live path: the nightly process gives way to it on the CPU and the disk."""

from __future__ import annotations

import logging
import os

import psutil

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> None:
    """This process at `nice` more CPU niceness and the idle I/O class (Linux); where the system
    refuses the I/O class, it says so and trains anyway."""
    os.nice(nice)
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
    except (AttributeError, OSError, psutil.Error) as error:
        log.warning("idle I/O priority refused (%s): training competes for the disk", error)
