"""The HTTP headers every page of the panel (and of the safe-mode panel) carries: nothing loaded
from elsewhere, no inline script, no framing, no guessing of content types."""

from __future__ import annotations

from flask import Flask

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
    "style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(app: Flask, extra: dict[str, str] | None = None) -> None:
    headers = {**SECURITY_HEADERS, **(extra or {})}

    @app.after_request
    def _headers(response):
        response.headers.update(headers)
        return response
