"""The operators' console at /console and the GraphiQL page's assets: static files the
app serves itself (nothing from a CDN). The console is a browser client of the public
/graphql API (docs/console.md); `static/vendor/` holds the libraries copied from
console/package-lock.json by scripts/vendor-assets."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
GRAPHIQL_HTML = Path(__file__).parent / "graphiql.html"


def console_routes() -> list[Any]:
    """`/console/` (the single page and its modules) and `/console/vendor/` (the libraries),
    gzipped for browsers that accept it (GraphiQL's script is 3.5 MB as it is, under 1 MB gzipped)."""

    async def to_console(_: Any) -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    return [Route("/console", to_console), Mount("/console", GZipMiddleware(StaticFiles(directory=STATIC, html=True)), name="console")]


def graphiql_html() -> str:
    """Strawberry's GraphiQL page with React and GraphiQL loaded from /console/vendor/."""
    return GRAPHIQL_HTML.read_text(encoding="utf-8")
