"""The README's GraphQL session ("## A GraphQL session"), run as written against a base URL:
its shell block (mint a token, register a card with curl) with bash, then its GraphQL
operations, checked against the answers its `# →` comments promise."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from gateways.tls import client_ssl_context

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Session:
    shell: str  # the ```sh block: mint a token, register a card with curl
    operations: list[tuple[str, list[str]]]  # each GraphQL operation and its `# →` comments


def readme_session() -> Session:
    text = README.read_text()
    section = text[text.index("## A GraphQL session"):]
    section = section[: section.index("\n## ", 5)]
    blocks = dict(re.findall(r"^```(sh|graphql)\n(.*?)^```", section, re.S | re.M))
    operations = []
    for chunk in blocks["graphql"].strip().split("\n\n"):
        lines = chunk.splitlines()
        operations.append(("\n".join(l for l in lines if not l.startswith("#")),
                           [l.removeprefix("# → ") for l in lines if l.startswith("# → ")]))
    return Session(blocks["sh"], operations)


def run_readme_session(base_url: str, jwt_secret: str, provider: str) -> dict[str, Any]:
    """The README's commands, as written but for the address, the secret and the provider; the
    answers its comments promise. Returns what the session saw, for further checks."""
    session = readme_session()
    host = urlparse(base_url).netloc
    shell = (session.shell.replace("SUBLEDGER_JWT_SECRET=...", f"SUBLEDGER_JWT_SECRET={jwt_secret}")
             .replace(".venv/bin/", f"{BIN}/").replace("localhost:8000", host)
             .replace("provider: SANDBOX", f"provider: {provider}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    done = subprocess.run(["bash", "-euc", shell + '\nprintf "\\n%s\\n" "$TOKEN"'], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    *answer, token = done.stdout.strip().splitlines()
    registered = json.loads("\n".join(answer))
    method = registered["data"]["registerPaymentMethod"]
    assert method["id"].startswith("pm_") and method["cardMasked"], registered
    headers = {"Authorization": f"Bearer {token}"}

    def send(query: str) -> dict[str, Any]:
        reply = httpx.post(f"{base_url}/graphql", json={"query": query}, headers=headers, timeout=60, verify=client_ssl_context())
        body = reply.json()
        assert reply.status_code == 200 and not body.get("errors"), body
        return body["data"]

    (purchase, purchase_says), (spend, spend_says), (wallet, _) = session.operations
    assert purchase_says == ["status SUCCEEDED, amount 5000, totalPoints 5500, usableBalance 5500"]
    bought = send(purchase.replace("pm_…", method["id"]))["purchasePoints"]
    assert (bought["payment"], bought["totalPoints"], bought["wallet"]) == (
        {"status": "SUCCEEDED", "amount": 5000}, 5500, {"usableBalance": 5500})
    assert spend_says[0].startswith("500 spent, 5000 left")
    spent = send(spend)["spendPoints"]
    assert (spent["pointsSpent"], spent["remainingBalance"]) == (500, 5000)
    deadline = time.monotonic() + 60
    while True:  # the history is a read model: it follows the ledger a moment behind
        seen = send(wallet)["wallet"]
        if len(seen["transactions"]["items"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen["usableBalance"] == 5000
    assert sorted(item["amount"] for item in seen["transactions"]["items"]) == [-500, 5500], seen
    return {"method": method, "token": token}
