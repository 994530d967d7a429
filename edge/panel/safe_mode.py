"""Safe mode: a minimal panel for an invalid site file, instead of a crash loop.

When `beltcam run`, `demo` or `panel` finds its site file invalid, this small app of its own shows
the error and the file, and writes a fixed file (checked by load_config's rules, atomically, with a
backup) so the command can go on. It needs nothing the broken file names: no database (logins may
be impossible), no data directory. Editing is protected by a key made at each start and printed to
the console and the log, which only someone who can read the agent's output has; CSRF is on, and
passwords in the file are shown redacted and kept as they are when their line is left unchanged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from flask import Flask, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from pydantic import ValidationError

from edge.config import ConfigError, PanelConfig, redact_credentials
from edge.panel.security import add_security_headers
from edge.panel.site_file import (
    SiteChanged,
    backup_path,
    read_site,
    redact_text,
    restore_secrets,
    save_site_text,
)

log = logging.getLogger(__name__)
STOP_S = 5.0
MAX_FILE_BYTES = 1024 * 1024
WRONG_KEY_LIMIT = "10 per minute"


def lenient_panel_settings(text: str) -> PanelConfig:
    """Where the panel should listen, read from a file that is invalid somewhere: the `panel:`
    section's keys that are valid on their own, the defaults for the rest (and for everything when
    the file is not YAML or the section is missing)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return PanelConfig()
    section = raw.get("panel") if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        return PanelConfig()
    try:
        return PanelConfig.model_validate(section)
    except ValidationError:
        pass
    usable = {}
    for key, value in section.items():
        try:
            PanelConfig.model_validate({key: value})
        except ValidationError:
            continue
        usable[key] = value
    return PanelConfig.model_validate(usable)


@dataclass
class SafeModeState:
    """What the safe-mode app and the command waiting for it share."""

    path: Path
    error: str  # why the file is invalid, as load_config says it (redacted when shown)
    key: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    then: str = "the command goes on with the fixed file"  # said once the file is saved
    fixed: threading.Event = field(default_factory=threading.Event)


def create_safe_app(state: SafeModeState) -> Flask:
    app = Flask(__name__)  # this package's templates/ and static/ (the panel's stylesheet)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # the data directory may be unknown: a key of this run only
        SESSION_COOKIE_NAME="beltcam_safe_mode",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=2 * MAX_FILE_BYTES,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions["beltcam_safe_mode"] = state
    CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")

    def page(status: int = 200, text: str | None = None, problem: str | None = None, saved: bool = False):
        if text is None:
            try:
                text = redact_text(read_site(state.path).text)
            except OSError as error:
                text, problem = "", f"{state.path}: cannot read it: {error.strerror or error}"
        return render_template(
            "safe_mode.html", state=state, error=redact_credentials(state.error), text=text, problem=problem,
            saved=saved, backup=backup_path(state.path).name,
        ), status  # fmt: skip

    @app.route("/")
    def show():
        return page(saved=state.fixed.is_set())

    @app.route("/", methods=["POST"])
    @limiter.limit(WRONG_KEY_LIMIT, deduct_when=lambda response: response.status_code == 403)
    def fix():
        if state.fixed.is_set():
            return page(saved=True)
        edited = request.form.get("text", "").replace("\r\n", "\n")
        if not hmac.compare_digest(request.form.get("key", "").encode(), state.key.encode()):
            log.warning("safe mode: an edit with a wrong key from %s was refused", request.remote_addr)
            return page(403, edited, "wrong key: use the one printed in the agent's console or log at start")
        if len(edited.encode()) > MAX_FILE_BYTES:
            return page(413, edited, f"the file may have at most {MAX_FILE_BYTES // 1024} KiB")
        try:
            current = read_site(state.path)
            text = restore_secrets(current.text, edited)
            save_site_text(state.path, text, expected_sha=request.form.get("sha") or None)
        except (ValueError, SiteChanged) as problem:  # ConfigError is a ValueError
            said = str(problem) if isinstance(problem, ConfigError | SiteChanged) else f"not saved: {problem}"
            return page(
                422 if not isinstance(problem, SiteChanged) else 409, edited, redact_credentials(said)
            )
        except OSError as error:
            return page(500, edited, f"{state.path}: not saved: {error.strerror or error}")
        log.info(
            "safe mode: %s fixed from the panel (previous version in %s)", state.path, backup_path(state.path)
        )
        state.fixed.set()
        return page(saved=True)

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        return page(400, None, f"refused: {error.description} (reload the page and try again)")

    @app.errorhandler(404)
    def _missing(_error):
        return (
            "safe mode: only / is served until the site file is fixed\n",
            404,
            {"Content-Type": "text/plain"},
        )

    add_security_headers(app, {"Cache-Control": "no-store"})

    @app.context_processor
    def _sha():
        try:
            return {"sha": read_site(state.path).sha}
        except OSError:
            return {"sha": ""}

    return app
