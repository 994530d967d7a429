"""The panel's Flask app factory: security settings, blueprints, and the login every page needs.

Everything the pages use ships in the package (plant networks have no internet), and the Content
Security Policy allows nothing from elsewhere, nor inline scripts.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from edge.panel import (
    actuators,
    annotate,
    api,
    auth,
    calibration,
    live,
    metrics,
    models,
    recordings,
    settings,
    system,
    training,
)
from edge.panel.context import PanelContext
from edge.panel.secret import panel_secret
from edge.panel.security import add_security_headers

BLUEPRINTS = (
    auth, live, recordings, annotate, models, training, calibration, actuators, system, settings, api, metrics
)  # fmt: skip
PUBLIC_ENDPOINTS = {"auth.login", "static"}


def create_app(context: PanelContext) -> Flask:
    settings = context.config.panel
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=panel_secret(context.config.storage.data_dir),
        SESSION_COOKIE_NAME="beltcam_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        MAX_CONTENT_LENGTH=int(settings.max_upload_mb * 1024 * 1024),
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the login: a page left open on a shift still works
    )
    app.extensions["beltcam"] = context
    CSRFProtect(app)
    auth.login_manager.init_app(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    app.view_functions["auth.login"] = limiter.limit(
        settings.login_limit, methods=["POST"], deduct_when=lambda response: response.status_code == 401
    )(app.view_functions["auth.login"])
    public = PUBLIC_ENDPOINTS | ({"metrics.metrics"} if settings.public_metrics else set())

    @app.before_request
    def _login_required():
        if request.endpoint in public or current_user.is_authenticated:
            return None
        if request.path.startswith("/api/"):
            return jsonify(error="log in first"), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    add_security_headers(app)

    @app.context_processor
    def _site():
        return {"site": context.config.site_name, "agent_running": context.agent_running}

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        return _error(400, f"refused: {error.description} (reload the page and try again)")

    @app.errorhandler(429)
    def _too_many(error: HTTPException):
        return _error(429, f"too many failed logins from this address: wait a minute ({error.description})")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return _error(error.code or 500, error.description or error.name)

    return app


def _error(code: int, message: str):
    if request.path.startswith("/api/"):
        return jsonify(error=message), code
    return render_template("error.html", code=code, message=message), code
