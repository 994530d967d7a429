"""Reading and writing the site file from the panel (Settings page and safe mode).

A save must never leave a half-written or invalid file behind, since the agent reads it at its next
start: the new text goes to a temporary file next to the site file, is flushed to disk, is checked
by `load_config` itself (the very rules the agent will apply, relative paths included), and only
then replaces the file by a rename; the previous version is kept as `<name>.bak` beside it.

Secrets (database and camera URLs with passwords) are shown redacted; an edit that leaves a
redacted line untouched keeps the real line, so a password never has to pass through a browser.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.config import ConfigError, SiteConfig, load_config, redact_credentials
from edge.store.files import fsync_directory

BACKUP_SUFFIX = ".bak"
REDACTED = "***"
_save_lock = threading.Lock()  # two technicians saving at once: one after the other


class SiteChanged(RuntimeError):
    """The file on disk is not the one the technician reviewed: someone else saved in between."""


@dataclass(frozen=True)
class SiteText:
    path: Path
    text: str
    sha: str  # of the bytes on disk: a save checks that nobody changed them since they were shown

    @property
    def raw(self) -> object:
        """The parsed YAML as it is (not validated), or None when it is not YAML at all."""
        try:
            return yaml.safe_load(self.text)
        except yaml.YAMLError:
            return None

    @property
    def has_comments(self) -> bool:
        return any(line.lstrip().startswith("#") or " #" in line for line in self.text.splitlines())


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_site(path: Path) -> SiteText:
    data = path.read_bytes()
    return SiteText(path, data.decode("utf-8", errors="replace"), digest(data))


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def redact_text(text: str) -> str:
    return "\n".join(redact_credentials(line) for line in text.split("\n"))


def restore_secrets(original: str, edited: str) -> str:
    """Put the real text back on every line the technician left as it was shown (redacted).

    Raises ValueError when a redacted password is still in the text on a line that was changed:
    saving it would replace the real password with three stars."""
    real = {redact_credentials(line): line for line in original.split("\n")}
    restored = []
    for number, line in enumerate(edited.split("\n"), start=1):
        line = line.rstrip("\r")
        if line in real:
            restored.append(real[line])
            continue
        if f":{REDACTED}@" in line or f"={REDACTED}" in line:
            raise ValueError(
                f"line {number}: a password shows as {REDACTED}: type the real one, "
                "or leave the line as it was"
            )
        restored.append(line)
    return "\n".join(restored)


def _write_synced(folder: Path, name_hint: str, data: bytes, mode: int | None) -> Path:
    fd, temporary = tempfile.mkstemp(prefix=f".{name_hint}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temporary, mode)  # a site file readable by its owner only stays so
    except BaseException:
        os.unlink(temporary)
        raise
    return Path(temporary)


def save_site_text(path: Path, text: str, expected_sha: str | None = None) -> SiteConfig:
    """Check `text` with load_config's rules and, only when valid, put it in place atomically.

    Raises ConfigError (the one-line reason, naming the site file, nothing written), SiteChanged
    (the file is not the reviewed one) or OSError (folder not writable)."""
    target = Path(os.path.realpath(path))  # a symlinked site file stays a symlink
    with _save_lock:
        try:
            current = target.read_bytes()
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            current, mode = None, None
        if expected_sha is not None and (current is None or digest(current) != expected_sha):
            raise SiteChanged(f"{path} changed since it was shown: look at it again before saving")
        temporary = _write_synced(target.parent, target.name, text.encode("utf-8"), mode)
        try:
            try:
                config = load_config(temporary)  # the same rules, relative paths from the same folder
            except ConfigError as error:
                raise ConfigError(str(error).replace(str(temporary), str(path))) from None
            if current is not None:
                backup = _write_synced(target.parent, target.name, current, mode)
                os.replace(backup, backup_path(target))
            os.replace(temporary, target)
            fsync_directory(target.parent)
        finally:
            if temporary.exists():
                temporary.unlink()
    return config
