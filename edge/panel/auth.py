"""Logging in and out, who may do what, and the rate limit on failed logins.

Every page needs a login (only the login page, static assets and, when the site allows it,
`/metrics` do not); every action that changes something needs a technician and the form's CSRF
token (Flask-WTF checks the token on every POST before a view runs).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from edge.store.users import UserEntry, authenticate, user_by_id

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see the panel."


class PanelUser(UserMixin):
    def __init__(self, entry: UserEntry) -> None:
        self.id = str(entry.id)
        self.name = entry.name
        self.role = entry.role

    @property
    def is_technician(self) -> bool:
        return self.role == "technician"


@login_manager.user_loader
def _load(user_id: str) -> PanelUser | None:
    entry = user_by_id(current_app.extensions["beltcam"].store, int(user_id)) if user_id.isdigit() else None
    return None if entry is None else PanelUser(entry)


def technician_required(view: Callable) -> Callable:
    """Viewers may look, not act: 403 for them."""

    @wraps(view)
    def checked(*args, **kwargs):
        if not getattr(current_user, "is_technician", False):
            abort(403, "this needs a technician's login")
        return view(*args, **kwargs)

    return checked


def _safe_next(target: str | None) -> str:
    """Only a path on this panel: a link to the login page must not send the user elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("live.page")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        user = authenticate(
            current_app.extensions["beltcam"].store,
            request.form.get("name", ""),
            request.form.get("password", ""),
        )
        if user is not None:
            login_user(PanelUser(user))
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong name or password.", "error")
        return render_template("login.html"), 401
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
