"""The console's and GraphiQL's assets are the app's own: every script and stylesheet they load
is served from /console/, and the vendored libraries are the versions console/package-lock.json
pins (scripts/vendor-assets copies them)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from subledger.console import GRAPHIQL_HTML, STATIC, graphiql_html

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ("chart.js", "react", "react-dom", "graphiql", "@graphiql/plugin-explorer")


def loaded_urls(html: str) -> list[str]:
    return re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', html)


def test_the_pages_load_nothing_from_another_origin() -> None:
    for html in (graphiql_html(), (STATIC / "index.html").read_text()):
        urls = loaded_urls(html)
        assert urls, "no script or stylesheet found: the pattern no longer matches the page"
        outside = [u for u in urls if re.match(r"^(https?:)?//", u)]
        assert outside == []
    assert "/console/vendor/graphiql.min.js" in loaded_urls(GRAPHIQL_HTML.read_text())


def test_every_loaded_file_is_there() -> None:
    for html, prefix in ((graphiql_html(), "/console/"), ((STATIC / "index.html").read_text(), "")):
        for url in loaded_urls(html):
            if not url.startswith("data:"):
                assert url.startswith(prefix) and (STATIC / url.removeprefix(prefix)).stat().st_size > 0, url


def test_the_vendored_versions_are_the_locked_ones() -> None:
    lock = json.loads((ROOT / "console" / "package-lock.json").read_text())
    locked = {name: lock["packages"][f"node_modules/{name}"]["version"] for name in VENDORED}
    copied = dict(line.split(" ", 1) for line in (STATIC / "vendor" / "VERSIONS").read_text().splitlines())
    assert copied == locked
    wanted = json.loads((ROOT / "console" / "package.json").read_text())["dependencies"]
    assert wanted == locked  # exact pins in package.json, the same in the lock
