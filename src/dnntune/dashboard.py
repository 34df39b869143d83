"""Serve optuna-dashboard on a study's storage, safely by default.

The dashboard has no authentication, and anyone who reaches it can rename or delete studies,
edit notes and tell trials. :func:`serve` binds to this machine only unless told otherwise,
and with ``read_only`` refuses every request that would change something (all of the
dashboard's changes are POST, PUT, PATCH or DELETE requests; reading is GET).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["LOCAL", "exposed_warning", "refuse_changes", "serve"]

LOCAL = "127.0.0.1"
_READING = frozenset({"GET", "HEAD", "OPTIONS"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refuse_changes(app: WsgiApp) -> WsgiApp:
    """The WSGI app, refusing with 403 every request that is not a read."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in _READING:
            return app(environ, start_response)
        body = b'{"reason": "this dashboard is read-only (dnntune dashboard --read-only)"}'
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return guarded


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposed_warning(host: str, read_only: bool) -> str | None:
    """The warning for a dashboard bound beyond this machine (None for a loopback address)."""
    if _is_loopback(host):
        return None
    edit = (
        "read-only: anyone who reaches it can read the study"
        if read_only
        else "anyone who reaches it can read and edit the study (rename or delete it, tell "
        "trials); add --read-only to refuse changes"
    )
    return f"the dashboard on {host} has no authentication and {edit}"


def serve(
    backend: Any,
    *,
    host: str = LOCAL,
    port: int = 8080,
    read_only: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve the dashboard on ``backend`` (an Optuna storage) until interrupted."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    app = wsgi(backend)
    if read_only:
        app = refuse_changes(app)

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No line per request on stderr."""

    with make_server(host, port, app, handler_class=_Quiet) as server:
        if on_ready is not None:
            on_ready()
        server.serve_forever()
