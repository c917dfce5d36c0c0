"""Auditors over HTTP (SPEC §7): the ledger's events, asOf reads, verifyLedger, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.conftest import Api

EVENTS = """query($a: ID, $u: ID, $after: Int, $n: Int) { events(aggregateId: $a, userId: $u, after: $after, first: $n) {
  position aggregateId aggregateType version type occurredAt data } }"""
ADJUST = """mutation($u: ID!, $a: Int!) { adjustPoints(input: {userId: $u, amount: $a, reason: "audit"}) { id balanceAfter } }"""
ADVANCE = """mutation($to: DateTime!) { advanceTestClock(to: $to) { job } }"""
WALLET_AS_OF = """query($u: ID, $t: DateTime) { wallet(userId: $u, asOf: $t) { totalBalance version } }"""
VERIFY = "mutation { verifyLedger { eventsReplayed aggregatesChecked mismatches } }"
AUDITOR = {"user": "auditor-1", "scope": "auditor"}
ADMIN = {"user": "ops", "scope": "admin"}


def now_of(api: Api) -> datetime:
    return datetime.fromisoformat(api.gql("{ clock { now } }")["clock"]["now"])


def advance(api: Api, hours: float) -> datetime:
    to = now_of(api) + timedelta(hours=hours)
    api.gql(ADVANCE, {"to": to.isoformat()}, **ADMIN)
    return to


def history(api: Api, user: str) -> None:
    """Three adjustments an hour apart, so asOf can fall between them."""
    for amount in (100, 250, -50):
        api.gql(ADJUST, {"u": user, "a": amount}, **ADMIN)
        advance(api, 1)


def all_events(api: Api, **filters) -> list[dict]:
    found, after = [], None
    while True:
        page = api.gql(EVENTS, {**filters, "after": after, "n": 7}, **AUDITOR)["events"]
        found += page
        if len(page) < 7:
            return found
        after = page[-1]["position"]


def test_events_page_the_ledger_in_global_order(api: Api, user: str) -> None:
    history(api, user)
    other = f"{user}-other"
    api.gql(ADJUST, {"u": other, "a": 5}, **ADMIN)
    events = all_events(api)
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions)) and len(events) >= 8
    api.settle_read_models()

    mine = all_events(api, u=user)
    wallet_events = [e for e in mine if e["aggregateType"] == "Wallet"]
    assert [(e["type"], e["version"]) for e in wallet_events] == [("Opened", 1), ("Credited", 2), ("Credited", 3), ("Debited", 4)]
    assert [e["data"].get("amount") for e in wallet_events[1:]] == [100, 250, 50]
    assert all(e["data"]["user_id"] == user for e in wallet_events[:1])
    # occurredAt is the business time (the test clock), an hour apart.
    times = [datetime.fromisoformat(e["occurredAt"]) for e in wallet_events[1:]]
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(hours=1)] * 2
    # One aggregate's events; and the same aggregate filtered by a user it does not belong to.
    wallet_id = wallet_events[0]["aggregateId"]
    assert [e["version"] for e in all_events(api, a=wallet_id)] == [1, 2, 3, 4]
    assert api.gql(EVENTS, {"a": wallet_id, "u": other}, **AUDITOR)["events"] == []
    assert {e["aggregateId"] for e in all_events(api, u=other)}.isdisjoint({e["aggregateId"] for e in mine})
    # Paging after the last position answers nothing.
    assert api.gql(EVENTS, {"after": positions[-1]}, **AUDITOR)["events"] == []


def test_events_need_auditor_or_admin_and_refuse_bad_input(api: Api, user: str) -> None:
    api.gql(ADJUST, {"u": user, "a": 10}, **ADMIN)
    assert api.error(EVENTS, {"u": user}, user=user).code == "FORBIDDEN"
    assert api.error(EVENTS, {}, user="analyst-1", scope="analyst").code == "FORBIDDEN"
    assert api.gql(EVENTS, {"n": 1}, **ADMIN)["events"][0]["position"] >= 1
    for bad in ({"n": 0}, {"n": 1001}, {"after": -1}, {"a": "not-an-id"}):
        assert api.error(EVENTS, bad, **AUDITOR).code == "BAD_USER_INPUT"


def test_wallet_as_of_answers_the_balance_of_that_moment(api: Api, user: str) -> None:
    start = now_of(api)
    history(api, user)  # +100 at start, +250 at start+1h, -50 at start+2h
    for offset, expected in ((-1, (0, 0)), (0.5, (100, 2)), (1, (350, 3)), (1.5, (350, 3)), (2.5, (300, 4))):
        at = (start + timedelta(hours=offset)).isoformat()
        wallet = api.gql(WALLET_AS_OF, {"u": user, "t": at}, **AUDITOR)["wallet"]
        assert (wallet["totalBalance"], wallet["version"]) == expected, offset
    # The owner may read their own past; another user may not, with or without asOf; an auditor may.
    at = (start + timedelta(hours=0.5)).isoformat()
    assert api.gql(WALLET_AS_OF, {"t": at}, user=user)["wallet"]["totalBalance"] == 100
    assert api.error(WALLET_AS_OF, {"u": user, "t": at}, user=f"{user}-x").code == "FORBIDDEN"
    assert api.error(WALLET_AS_OF, {"u": user}, user=f"{user}-x").code == "FORBIDDEN"
    assert api.error(WALLET_AS_OF, {"u": user, "t": at}, user="analyst-1", scope="analyst").code == "FORBIDDEN"


def test_verify_ledger_is_clean_then_names_a_corrupted_row(api: Api, user: str) -> None:
    history(api, user)
    api.settle_read_models()
    assert api.error(VERIFY, user=user).code == "FORBIDDEN"
    report = api.gql(VERIFY, **AUDITOR)["verifyLedger"]
    assert report["mismatches"] == []
    head = api.built.ledger.recorder.max_notification_id()
    assert report["eventsReplayed"] >= 8 and report["eventsReplayed"] <= head
    assert report["aggregatesChecked"] >= 2

    table = api.built.read_models.runner("wallet_history").current().transactions
    with api.built.view_db.transaction() as cursor:
        cursor.execute(
            f"UPDATE {table} SET balance_after = balance_after + 7 WHERE user_id = ? AND amount = -50", (user,)
        )
    mismatches = api.gql(VERIFY, **ADMIN)["verifyLedger"]["mismatches"]
    assert any("wallet_transactions" in m and "balance_after" in m for m in mismatches), mismatches
    assert any(user in m for m in mismatches)
