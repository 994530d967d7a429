"""The key that signs the panel's session cookies: made once per site, kept in the data directory
readable by its owner only, so logins survive a restart and no two sites share a key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "panel-secret.key"


def panel_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as file:
        file.write(secrets.token_bytes(32))
        file.flush()
        os.fsync(file.fileno())
    return path.read_bytes()
