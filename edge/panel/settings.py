"""The Settings page: the site file as a form generated from its pydantic models.

A save goes form -> review -> save: the submitted form is read back into the file's mapping and
validated by the same `SiteConfig` (errors next to their inputs, nothing written); the review shows
the unified diff and the agent's workers that read the changed keys; the save re-checks that the
file is still the reviewed one, then writes it atomically with a backup, checked once more by
`load_config` itself. The agent reads the file only at start, so a change applies after a restart:
inside the agent the page can restart it (PanelContext.restart); `beltcam panel` on its own cannot.

The review page carries the form's fields (as the browser had them, passwords redacted), never the
new file text, so no secret is ever put into a page.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from flask import Blueprint, abort, current_app, render_template, request
from pydantic import ValidationError

from edge.config import ConfigError, SiteConfig, load_config
from edge.panel.auth import technician_required
from edge.panel.context import PanelContext
from edge.panel.schema_form import ADD, attach_errors, build_form, read_form
from edge.panel.schema_form import add_item as add_list_item
from edge.panel.site_changes import WORKERS, affected_workers, changed_keys, unified_diff
from edge.panel.site_file import SiteChanged, SiteText, backup_path, digest, read_site, save_site_text
from edge.panel.site_yaml import site_text

bp = Blueprint("settings", __name__)
BACK = "__back"
NOT_APPLIED = "saved; restart the agent to apply"


def _context() -> PanelContext:
    return current_app.extensions["beltcam"]


def _site() -> SiteText:
    path = _context().config_path
    if path is None:
        abort(409, "this panel was started without a site file: there is nothing to edit")
    try:
        return read_site(Path(path))
    except OSError as error:
        abort(500, f"{path}: cannot read the site file: {error.strerror or error}")


def _validated(raw: object) -> dict | None:
    try:
        return SiteConfig.model_validate(raw).model_dump(mode="json")
    except ValidationError:
        return None


def _pending(site: SiteText) -> list[str]:
    """Workers that run with other settings than the file now holds (inside the agent only)."""
    context = _context()
    if context.restart is None:
        return []
    try:
        saved = load_config(site.path).model_dump(mode="json")
    except ConfigError:
        return []
    return affected_workers(changed_keys(context.config.model_dump(mode="json"), saved))


def _render_form(
    site: SiteText, values: object, typed=None, problems=None, error=None, status=200, note=None
):
    nodes = build_form(SiteConfig, values, typed)
    general = attach_errors(nodes, problems or {}, error)
    try:
        load_config(site.path)
    except ConfigError as problem:
        if not problems and error is None:
            general.insert(0, f"the file as it is now: {problem}")
    return render_template(
        "settings.html", nodes=nodes, general=general, site_file=site, note=note, pending=_pending(site),
        workers=WORKERS, restart=_context().restart is not None,
    ), status  # fmt: skip


@bp.route("/settings")
def page():
    site = _site()
    return _render_form(site, site.raw)


def _change(site: SiteText):
    """The submitted form as the new file: (mapping, text, comments kept, problems, validation error)."""
    mapping, problems = read_form(SiteConfig, request.form, site.raw)
    error = None
    try:
        SiteConfig.model_validate(mapping)
    except ValidationError as invalid:
        error = invalid
    text, kept = site_text(site.text, mapping)
    return mapping, text, kept, problems, error


@bp.route("/settings/review", methods=["POST"])
@technician_required
def review():
    site = _site()
    form = request.form
    if ADD in form:  # one more list item: drawn empty, nothing checked yet
        mapping, problems = read_form(SiteConfig, form, site.raw, removals=False)
        add_list_item(mapping, form[ADD])
        return _render_form(site, mapping, problems=problems, note=f"{form[ADD]}: a new item, fill it in")
    mapping, text, kept, problems, error = _change(site)
    if problems or error is not None:
        return _render_form(site, mapping, form, problems, error, status=422)
    if BACK in form:
        return _render_form(site, mapping, form)
    if mapping == site.raw:
        return _render_form(
            site, mapping, form, note="nothing changed: the file already holds these settings"
        )
    before = _validated(site.raw)
    after = SiteConfig.model_validate(mapping).model_dump(mode="json")
    workers = affected_workers(changed_keys(before, after)) if before is not None else affected_workers(["*"])
    hidden = [(key, value) for key, value in form.items(multi=True) if key not in ("csrf_token", BACK)]
    return render_template(
        "settings_review.html", diff=unified_diff(site.text, text, site.path.name), kept=kept,
        affected=workers, workers=WORKERS, hidden=hidden, base_sha=site.sha, new_sha=digest(text.encode()),
        site_file=site, restart=_context().restart is not None,
    )  # fmt: skip


@bp.route("/settings/save", methods=["POST"])
@technician_required
def save():
    context = _context()
    site = _site()
    form = request.form
    mapping, text, _, problems, error = _change(site)
    if problems or error is not None:
        return _render_form(site, mapping, form, problems, error, status=422)
    if form.get("base_sha") != site.sha:
        return _render_form(site, mapping, form, status=409, note="the site file changed since your review: "
                            "review your change again")  # fmt: skip
    if form.get("new_sha") != digest(text.encode()):
        return _render_form(
            site, mapping, form, status=409, note="this is not the reviewed change: review it again"
        )
    before = _validated(site.raw)
    try:
        save_site_text(site.path, text, expected_sha=site.sha)
    except ConfigError as invalid:
        return _render_form(site, mapping, form, {"": str(invalid)}, status=422)
    except SiteChanged as changed:
        return _render_form(site, mapping, form, status=409, note=str(changed))
    except OSError as failed:
        abort(500, f"{site.path}: not saved: {failed.strerror or failed}")
    after = SiteConfig.model_validate(yaml.safe_load(text)).model_dump(mode="json")
    workers = affected_workers(changed_keys(before, after)) if before is not None else affected_workers(["*"])
    restarting = form.get("then") == "restart" and context.restart is not None and bool(workers)
    current_app.logger.info(
        "site file %s saved from the panel; affects %s", site.path, ", ".join(workers) or "nothing"
    )
    if restarting:
        context.restart()
    return render_template(
        "settings_saved.html", site_file=site, backup=backup_path(site.path), affected=workers,
        workers=WORKERS, restart=context.restart is not None, restarting=restarting, not_applied=NOT_APPLIED,
    )  # fmt: skip


@bp.route("/settings/restart", methods=["POST"])
@technician_required
def restart():
    context = _context()
    if context.restart is None:
        abort(409, f"no agent in this process (`beltcam panel`): {NOT_APPLIED}")
    site = _site()
    workers = _pending(site) or list(WORKERS)
    current_app.logger.info("agent restart asked from the panel")
    context.restart()
    return render_template(
        "settings_saved.html", site_file=site, backup=None, affected=workers, workers=WORKERS, restart=True,
        restarting=True, not_applied=NOT_APPLIED,
    )  # fmt: skip
