"""Templates, navigation and the response helpers every console page uses."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from accolade_server.console.security import Permission, Session, session_of


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    permission: Permission


#: The console's pages, in menu order. Later pages (leaderboards, analytics, backfill) add
#: their entry here and their routes in `build_console`.
NAV: list[NavItem] = [
    NavItem("Achievements", "/achievements", Permission.READ),
    NavItem("Users", "/users", Permission.READ),
    NavItem("Leaderboards", "/leaderboards", Permission.READ),
    NavItem("Live", "/live", Permission.READ),
    NavItem("Insights", "/insights", Permission.READ),
    NavItem("Try it", "/try", Permission.ADMIN),
    NavItem("Import / export", "/import", Permission.READ),
    NavItem("Backfills", "/backfills", Permission.ADMIN),
]

#: Files under static/, served at /console/static/NAME (see `static_files`).
STATIC_FILES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# No inline script or style anywhere: the policy can forbid both.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' https: data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def static_files() -> dict[str, StaticFile]:
    """The packaged static files, read once (the wheel ships them as package data)."""
    root = resources.files("accolade_server.console") / "static"
    files = {}
    for name, media_type in STATIC_FILES.items():
        body = (root / name).read_bytes()
        files[name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return files


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _number(value: float) -> str:
    return f"{value:g}"


def _duration(seconds: float | None) -> str:
    """At most (`seconds` are bucket upper bounds): "≤ 1.2 s", "≤ 3.4 h", "≤ 2.1 d"."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"≤ {seconds / size:.1f} {unit}"
    return f"≤ {seconds:.1f} s"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("accolade_server.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["number"] = _number
    env.filters["duration"] = _duration
    return env


class Renderer:
    def __init__(self, static: dict[str, StaticFile]) -> None:
        self.env = environment()
        self.static_version = {name: f.etag for name, f in static.items()}

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(self.context(request, context))
        response = HTMLResponse(html, status_code=status)
        response.headers["cache-control"] = "no-store"
        return response

    def context(self, request: Request, extra: dict[str, Any]) -> dict[str, Any]:
        session: Session | None = session_of(request)
        base = request.scope.get("root_path", "")
        can_write = session is not None and session.can_write
        nav = [
            item
            for item in NAV
            if session is not None and (item.permission is not Permission.ADMIN or can_write)
        ]
        return {
            "request": request,
            "base": base,
            "session": session,
            "can_write": can_write,
            "nav": nav,
            "static": {n: f"{base}/static/{n}?v={v}" for n, v in self.static_version.items()},
            "current": request.url.path.removeprefix(base),
            **extra,
        }

    def refusal(self, request: Request, status: int, message: str) -> Response:
        """A page saying why a request was refused (the sign-in page when signed out)."""
        base = request.scope.get("root_path", "")
        if status == 401 and request.headers.get("hx-request") == "true":
            # A poll or form of a page whose session ended: send the whole page to sign-in.
            return Response(status_code=401, headers={"hx-redirect": f"{base}/sign-in"})
        if status == 401 and request.method in ("GET", "HEAD"):
            return Response(status_code=303, headers={"location": f"{base}/sign-in"})
        return self.page(request, "refused.html", {"status": status, "message": message}, status)
