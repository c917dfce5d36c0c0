"""The generated pages (docs/errors.md, docs/api-reference.md, docs/configuration.md) are
what the code renders now, and every link of the README and docs/ points into the repository."""
from __future__ import annotations

import re
from pathlib import Path

from subledger import docs
from subledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_generated_pages_are_up_to_date() -> None:
    differ = docs.stale(ROOT)
    assert not differ, f"out of date: {', '.join(differ)}; regenerate with `subledger docs` and commit them"


def test_the_check_sees_a_page_that_drifted(tmp_path: Path) -> None:
    for path, render in docs.PAGES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(render())
    assert docs.stale(tmp_path) == []
    (tmp_path / "docs/errors.md").write_text("edited by hand\n")
    assert docs.stale(tmp_path) == ["docs/errors.md"]


def test_every_setting_is_on_the_configuration_page() -> None:
    page = (ROOT / "docs/configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, f"SUBLEDGER_{name.upper()} has no description in subledger/settings.py"
        assert f"`SUBLEDGER_{name.upper()}`" in page


def test_links_stay_inside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, _anchor in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                broken.append(f"{page.name}: external link {target}")
            elif not (page.parent / target).resolve().exists():
                broken.append(f"{page.name}: {target} does not exist")
    assert not broken, "\n".join(broken)
