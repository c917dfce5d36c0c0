"""Personal data over HTTP (SPEC §7): contact details from the token, crypto-shredding, on SQLite and PostgreSQL."""
from __future__ import annotations

from schema.auth import mint_token
from tests.api.conftest import JWT_SECRET, Api

EMAIL, NAME = "minji.kim@example.com", "김민지"
CARD_MASKED = "4300********0001"
EVENTS = """query($u: ID) { events(userId: $u, first: 1000) { aggregateType type data } }"""
METHODS = "query($u: ID) { paymentMethods(userId: $u) { id cardMasked active } }"
ERASE = "mutation($u: ID!) { eraseUserData(userId: $u) }"
ADJUST = """mutation($u: ID!) { adjustPoints(input: {userId: $u, amount: 700, reason: "welcome"}) { id } }"""
WALLET = "query($u: ID) { wallet(userId: $u) { totalBalance version } }"
VERIFY = "mutation { verifyLedger { mismatches } }"
REBUILD = "mutation($n: String!) { rebuildProjection(name: $n) { name position headPosition lag } }"
EXPORT = """query($u: ID) { exportUserData(userId: $u) { userId email name paymentMethods { id cardMasked }
  subscriptions { id status plan { id } paymentMethod { cardMasked } } payments { id amount status kind }
  wallet { totalBalance transactions { totalCount } } notifications { kind } events { type data } } }"""
SUBSCRIBE = """mutation($m: ID!) { subscribe(input: {planId: "basic", paymentMethodId: $m}) { id status } }"""
ANALYTICS = """query($u: ID!) { subscriptionMetrics(from: "2026-03-01", to: "2026-03-31") { revenue { total mrr }
  subscribers { totalActive newSubscribers } } lifetimeValue(userId: $u) { totalRevenue subscriptionMonths } }"""
AUDITOR = {"user": "auditor-1", "scope": "auditor"}
ADMIN = {"user": "ops", "scope": "admin"}


def with_claims(user: str, email: str | None = EMAIL, name: str | None = NAME) -> str:
    extra = {k: v for k, v in {"email": email, "name": name}.items() if v is not None}
    return mint_token(JWT_SECRET, user, "user", **extra)


def contact_events(api: Api, user: str) -> list[dict]:
    api.settle_read_models()
    events = api.gql(EVENTS, {"u": user}, **AUDITOR)["events"]
    return [e["data"] for e in events if e["type"] == "ContactDetailsRecorded"]


def everything_stored(api: Api) -> str:
    """Every row of every table in the database, as text (events, read models, keys)."""
    db = api.built.view_db
    with db.transaction(readonly=True) as cursor:
        if db.kind == "sqlite":
            tables = [r["name"] for r in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
        else:
            tables = [
                r["table_name"]
                for r in cursor.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                ).fetchall()
            ]
        dumped = []
        for table in tables:
            for row in cursor.execute(f"SELECT * FROM {table}").fetchall():
                dumped.append(" ".join(bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, memoryview)) else str(v) for v in row.values()))
    return "\n".join(dumped)


def test_contact_details_are_recorded_once_per_change_and_never_stored_in_clear(api: Api, user: str) -> None:
    token = with_claims(user)
    for _ in range(3):
        assert api.gql("{ me }", token=token)["me"] == user
    assert [(e["email"], e["name"]) for e in contact_events(api, user)] == [(EMAIL, NAME)]
    api.gql("{ me }", token=with_claims(user, email="new@example.com"))
    assert [e["email"] for e in contact_events(api, user)] == [EMAIL, "new@example.com"]
    # A token without claims changes nothing; malformed claims are ignored, the request still answers.
    api.gql("{ me }", token=with_claims(user, email=None, name=None))
    assert api.gql("{ me }", token=mint_token(JWT_SECRET, user, "user", email="x" * 400))["me"] == user
    assert len(contact_events(api, user)) == 2
    stored = everything_stored(api)
    assert user in stored
    for secret in (EMAIL, NAME, "new@example.com"):
        assert secret not in stored


def test_erasure_nulls_personal_fields_everywhere_and_keeps_the_ledger(api: Api, user: str) -> None:
    token = with_claims(user)
    api.gql("{ me }", token=token)
    method = api.add_card(user)
    api.gql(ADJUST, {"u": user}, **ADMIN)
    bystander = f"{user}-bystander"
    api.gql("{ me }", token=with_claims(bystander, email="other@example.com", name="Other"))
    assert api.gql(METHODS, token=token)["paymentMethods"] == [{"id": method, "cardMasked": CARD_MASKED, "active": True}]
    subscription = api.gql(SUBSCRIBE, {"m": method}, token=token)["subscribe"]
    wallet_before = api.gql(WALLET, token=token)["wallet"]
    api.settle_read_models()
    exported = api.gql(EXPORT, token=token)["exportUserData"]
    assert (exported["userId"], exported["email"], exported["name"]) == (user, EMAIL, NAME)
    assert exported["paymentMethods"] == [{"id": method, "cardMasked": CARD_MASKED}]
    assert [(s["id"], s["status"], s["plan"]["id"]) for s in exported["subscriptions"]] == [(subscription["id"], "TRIALING", "basic")]
    assert exported["subscriptions"][0]["paymentMethod"] == {"cardMasked": CARD_MASKED}
    assert exported["wallet"] == {"totalBalance": 700, "transactions": {"totalCount": 1}}
    assert "WELCOME" in [n["kind"] for n in exported["notifications"]]
    exported_types = [e["type"] for e in exported["events"]]
    assert {"Registered", "ContactDetailsRecorded", "PaymentMethodAdded", "Opened", "Credited"} <= set(exported_types)
    assert api.error(EXPORT, {"u": user}, user=bystander).code == "FORBIDDEN"
    analytics_before = api.gql(ANALYTICS, {"u": user}, user="analyst-1", scope="analyst")
    assert analytics_before["subscriptionMetrics"]["subscribers"]["newSubscribers"] >= 1

    assert api.error(ERASE, {"u": user}, user=bystander).code == "FORBIDDEN"
    assert api.gql(ERASE, {"u": user}, token=token)["eraseUserData"] is True

    # Read with a token without claims: one with claims would be ignored anyway (checked below).
    assert api.gql(METHODS, user=user)["paymentMethods"] == [{"id": method, "cardMasked": None, "active": True}]
    assert api.gql(WALLET, user=user)["wallet"] == wallet_before
    assert [(e["email"], e["name"]) for e in contact_events(api, user)] == [(None, None)]
    api.settle_read_models()
    events = api.gql(EVENTS, {"u": user}, **AUDITOR)["events"]
    added = [e["data"] for e in events if e["type"] == "PaymentMethodAdded"]
    assert [(d["card_masked"], d["provider"], d["method_id"]) for d in added] == [(None, "SANDBOX", method)]
    assert [e["data"]["amount"] for e in events if e["type"] == "Credited"] == [700]
    assert "PersonalDataErased" in [e["type"] for e in events]
    # The bystander keeps their data; claims presented after erasure are not collected again.
    assert [e["email"] for e in contact_events(api, bystander)] == ["other@example.com"]
    api.gql("{ me }", token=token)
    assert [(e["email"], e["name"]) for e in contact_events(api, user)] == [(None, None)]

    erased = api.gql(EXPORT, {"u": user}, **ADMIN)["exportUserData"]
    assert (erased["email"], erased["name"]) == (None, None)
    assert erased["paymentMethods"] == [{"id": method, "cardMasked": None}]
    assert erased["subscriptions"][0]["paymentMethod"] == {"cardMasked": None}
    assert (erased["wallet"], erased["subscriptions"][0]["status"]) == (exported["wallet"], "TRIALING")
    personal = [e["data"] for e in erased["events"] if e["type"] in ("ContactDetailsRecorded", "PaymentMethodAdded")]
    assert personal and all(d.get("email") is None and d.get("name") is None and d.get("card_masked") is None for d in personal)
    assert [e["type"] for e in erased["events"]][: len(exported_types)] == exported_types

    assert api.gql(ANALYTICS, {"u": user}, user="analyst-1", scope="analyst") == analytics_before
    assert api.gql(VERIFY, **AUDITOR)["verifyLedger"]["mismatches"] == []
    for name in [row["name"] for row in api.gql("{ projections { name } }", **ADMIN)["projections"]]:
        rebuilt = api.gql(REBUILD, {"n": name}, user="analyst-1", scope="analyst")["rebuildProjection"]
        assert rebuilt["name"] == name and rebuilt["position"] > 0
    assert api.gql(VERIFY, **AUDITOR)["verifyLedger"]["mismatches"] == []
    assert api.gql(ANALYTICS, {"u": user}, user="analyst-1", scope="analyst") == analytics_before
    assert api.gql(METHODS, user=user)["paymentMethods"][0]["cardMasked"] is None
    stored = everything_stored(api)
    assert "other@example.com" not in stored and EMAIL not in stored and CARD_MASKED not in stored


def test_erasing_a_user_without_personal_data_answers_true_and_changes_nothing(api: Api, user: str) -> None:
    assert api.gql(ERASE, {"u": user}, **ADMIN)["eraseUserData"] is True
    assert api.gql(METHODS, user=user)["paymentMethods"] == []
    assert api.error(ERASE, {"u": f"{user}-x"}, user=user).code == "FORBIDDEN"
