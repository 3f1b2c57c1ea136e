"""The web UI at ``/ui``: static HTML, ES modules and CSS shipped in ``admin/ui/``, no build step.

The page is a client of the admin JSON API, one level above it (``/ui/`` -> ``/``), with the
same bearer token an operator's CLI uses; it holds no server-side state and the routes here
serve files only.

Invariants: only regular files inside ``admin/ui/`` with a known type are served (no directory
listings, no ``..`` escapes); ``/ui`` redirects to ``/ui/`` with a relative location, so the UI
works under a path prefix too (an API Gateway stage); every answer forbids caching stale
assets (``no-cache``: revalidate) and the HTML shell carries a Content-Security-Policy that
allows this origin's scripts and styles only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

UI_DIR = Path(__file__).resolve().with_name("ui")

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def _file(relative: str) -> FileResponse:
    path = (UI_DIR / relative).resolve()
    if UI_DIR not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        raise HTTPException(404, f"no UI file {relative!r}")
    headers = dict(_HEADERS)
    if path.suffix == ".html":
        headers["content-security-policy"] = _CSP
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=headers)


def ui_router() -> APIRouter:
    """``GET /ui`` (redirect), ``GET /ui/`` (the page) and ``GET /ui/{file}`` (its assets)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/ui")
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=307)

    @router.get("/ui/")
    async def ui_index() -> FileResponse:
        return _file("index.html")

    @router.get("/ui/{relative:path}")
    async def ui_asset(relative: str) -> FileResponse:
        return _file(relative)

    return router
