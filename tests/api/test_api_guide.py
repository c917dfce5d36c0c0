"""docs/api-guide.md runs: its walk-through is executed, block by block, against the
service in process (the ASGI app over httpx's ASGITransport, the sandbox gateway, the
test clock), on SQLite and on PostgreSQL, so the guide cannot rot.

How the guide is read (docs/api-guide.md, "How this guide is tested"):
- each ```graphql block is one request, sent in order; the ```json variables block
  right after it, if any, is its variables;
- the ```json answer block after that, if any, is compared with the response: every key
  it shows must be there with that value (objects may have more keys; lists must have
  exactly the elements shown); "…" stands for any value;
- `<Name.path.to.value>` in variables or answers is that value from the data of the
  earlier operation named Name (e.g. `<RegisterCard.registerPaymentMethod.id>`);
- `<!-- as USER (SCOPES) -->` before a block sends the rest with a token for USER with
  those scopes; `<!-- as nobody -->` sends none;
- list queries may lag writes: before each block the test waits until the read models
  have caught up, as a reader following along would see them.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateways.sandbox_engine import SandboxEngine
from schema.auth import mint_token
from subledger.app import Built, build
from tests.api.conftest import JWT_SECRET, make_settings

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "api-guide.md"
FENCE = re.compile(r"^```(\w+)(?:[ \t]+(\w+))?[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
AS = re.compile(r"<!-- as (?:nobody|(\S+) \(([^)]*)\)) -->")
PLACEHOLDER = re.compile(r"<([A-Z]\w*(?:\.\w+)+)>")
NAME = re.compile(r"^\s*(?:query|mutation)\s+(\w+)", re.M)
ANY = "…"


@dataclass
class Step:
    line: int
    query: str
    caller: tuple[str, str] | None
    variables: dict[str, Any] = field(default_factory=dict)
    answer: Any = None

    @property
    def name(self) -> str:
        found = NAME.search(self.query)
        return found.group(1) if found else f"line {self.line}"


def steps(text: str) -> list[Step]:
    """The guide's requests in order, each with its caller, variables and expected answer."""
    events = [(m.start(), "as", m) for m in AS.finditer(text)] + [(m.start(), "fence", m) for m in FENCE.finditer(text)]
    found: list[Step] = []
    caller: tuple[str, str] | None = None
    for start, kind, match in sorted(events, key=lambda e: e[0]):
        line = text.count("\n", 0, start) + 1
        if kind == "as":
            caller = (match.group(1), match.group(2)) if match.group(1) else None
            continue
        language, label, body = match.group(1), match.group(2), match.group(3)
        if language == "graphql":
            found.append(Step(line, body, caller))
        elif language == "json" and label in ("variables", "answer"):
            assert found, f"line {line}: a json {label} block before any graphql block"
            setattr(found[-1], label, json.loads(body))
    return found


def resolve(value: Any, results: dict[str, Any]) -> Any:
    """Replace `<Name.path>` placeholders with the earlier answers' values."""
    if isinstance(value, dict):
        return {k: resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results) for v in value]
    if isinstance(value, str) and (whole := PLACEHOLDER.fullmatch(value)):
        name, *path = whole.group(1).split(".")
        assert name in results, f"{value}: no earlier operation named {name}"
        found = results[name]
        for key in path:
            found = found[int(key)] if isinstance(found, list) else found[key]
        return found
    return value


def mismatches(expected: Any, actual: Any, where: str = "") -> list[str]:
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} elements, got {actual!r}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual)) for p in mismatches(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


class Reader:
    """Follows the guide against the app in process."""

    def __init__(self, built: Built, loop: asyncio.AbstractEventLoop) -> None:
        self.built = built
        self.loop = loop
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=built.http), base_url="http://guide")
        self.results: dict[str, Any] = {}

    def settle(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while any(row["lag"] for row in self.built.services.projections()):
            assert time.monotonic() < deadline, "read models did not catch up"
            time.sleep(0.01)

    def run(self, step: Step) -> None:
        self.settle()
        headers = {}
        if step.caller is not None:
            user, scope = step.caller
            headers["Authorization"] = f"Bearer {mint_token(JWT_SECRET, user, scope)}"
        body = {"query": step.query, "variables": resolve(step.variables, self.results)}
        response = self.loop.run_until_complete(self.client.post("/graphql", json=body, headers=headers))
        answer = response.json()
        where = f"docs/api-guide.md line {step.line} ({step.name})"
        if step.answer is None:
            assert not answer.get("errors"), f"{where} answered errors: {answer['errors']}"
        else:
            problems = mismatches(resolve(step.answer, self.results), answer)
            assert not problems, f"{where}:\n" + "\n".join(problems) + f"\nthe answer: {json.dumps(answer, ensure_ascii=False)}"
        if answer.get("data"):
            self.results[step.name] = answer["data"]


@pytest.fixture
def reader(database_url: str) -> Iterator[Reader]:
    built = build(make_settings(database_url), sandbox=SandboxEngine())
    loop = asyncio.new_event_loop()
    built.start_projections()
    follow = Reader(built, loop)
    try:
        yield follow
    finally:
        loop.run_until_complete(follow.client.aclose())
        loop.run_until_complete(built.aclose())
        loop.close()


def test_the_guide_parses_into_a_walk_through() -> None:
    found = steps(GUIDE.read_text(encoding="utf-8"))
    assert len(found) >= 15
    names = [step.name for step in found]
    assert len(set(names)) == len(names), "every request of the guide has its own operation name"
    assert sum(step.answer is not None for step in found) >= 12, "most requests show their answer"


def test_the_comparison_reports_a_wrong_answer() -> None:
    assert mismatches({"a": {"b": [1, ANY]}}, {"a": {"b": [1, 2], "c": 3}}) == []
    assert mismatches({"a": {"b": [1, 3]}}, {"a": {"b": [1, 2]}}) == [".a.b[1]: expected 3, got 2"]
    assert mismatches({"a": 1}, {}) == [".a: missing"]


def test_the_api_guide_runs(reader: Reader) -> None:
    for step in steps(GUIDE.read_text(encoding="utf-8")):
        reader.run(step)
