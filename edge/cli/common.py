"""What every `beltcam` command group shares: the `--config` option and the store it opens."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import DEFAULT_CONFIG_PATH, SiteConfig
from edge.store.frame_store import FrameStore


def add_config(parser: argparse.ArgumentParser, default: Path = DEFAULT_CONFIG_PATH) -> None:
    parser.add_argument("--config", type=Path, default=default, help=f"site file (default: {default})")


def open_store(config: SiteConfig) -> FrameStore:
    return FrameStore.from_config(config.storage)
