"""The import-linter contracts in pyproject.toml catch what DESIGN.md forbids: a copy of the tree with
one wrong import must fail them (the real tree passing is what `make lint` checks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "trainer", "calibration", "firmware_bridge")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    before = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(before + f"\n{line}  # noqa\n", encoding="utf-8")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        ("edge/store/retention.py", "from edge.cli import main", "edge.store.retention -> edge.cli"),
        ("edge/recorder/importer.py", "import edge.nightly.runs", "edge.recorder.importer -> edge.nightly"),
        ("edge/sources/health.py", "import edge.capture.newest", "edge.sources.health -> edge.capture"),
        ("calibration/__init__.py", "import edge.config", "calibration -> edge.config"),
        ("trainer/manifest.py", "import firmware_bridge.messages", "trainer.manifest -> firmware_bridge"),
        ("edge/status_hub.py", "import edge.config", "not listed as layers:\n\n- edge.status_hub"),
    ],
    ids=[
        "upwards",
        "between-middle-rooms",
        "bottom-to-capture",
        "library-to-edge",
        "library-to-library",
        "room-outside-the-contract",
    ],
)
def test_a_wrong_import_breaks_the_contracts(tmp_path, module, line, reported):
    result = _lint_copy(tmp_path, module, line)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert reported in result.stdout
