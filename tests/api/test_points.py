"""Point wallets through the public GraphQL API over HTTP (SPEC §4), on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.conftest import POOR_CARD, Api

WALLET = """query($u: ID) { wallet(userId: $u) { userId totalBalance usableBalance pendingBalance lifetimeEarned lifetimeSpent version
  expiringSoon(withinDays: 400) { amount expiresAt } } }"""
PURCHASE = """mutation($p: ID!, $m: ID!, $k: String) { purchasePoints(input: {packageId: $p, paymentMethodId: $m, idempotencyKey: $k}) {
  payment { id status amount kind orderId failureCode } pointsPurchased bonusPoints totalPoints wallet { usableBalance } } }"""
SPEND = """mutation($s: String, $a: Int, $id: String!, $k: String) { spendPoints(input: {service: $s, amount: $a, serviceId: $id, idempotencyKey: $k}) {
  transaction { id type amount balanceBefore balanceAfter referenceId } pointsSpent remainingBalance serviceAccessToken } }"""
ADJUST = """mutation($u: ID!, $a: Int!, $r: String!) { adjustPoints(input: {userId: $u, amount: $a, reason: $r}) { id amount balanceAfter expiresAt } }"""
REWARD = """mutation($u: ID!, $a: String!) { rewardPoints(input: {userId: $u, activity: $a}) { id type amount balanceAfter expiresAt } }"""
ADVANCE = """mutation($to: DateTime!) { advanceTestClock(to: $to) { job ranAt processed succeeded failed } }"""
HISTORY = """query($f: PointTransactionFilter, $n: Int, $c: String) { wallet { transactions(filter: $f, first: $n, after: $c) {
  totalCount nextCursor items { id type amount balanceBefore balanceAfter createdAt expiresAt } } } }"""


def now_of(api: Api) -> datetime:
    return datetime.fromisoformat(api.gql("{ clock { now } }")["clock"]["now"])


def wallet(api: Api, user: str) -> dict:
    return api.gql(WALLET, user=user)["wallet"]


def test_purchase_credits_one_lot_expiring_in_365_days(api: Api, user: str) -> None:
    method = api.add_card(user)
    bought = api.gql(PURCHASE, {"p": "regular", "m": method}, user=user)["purchasePoints"]
    assert bought["payment"]["status"] == "SUCCEEDED"
    assert (bought["payment"]["amount"], bought["payment"]["kind"]) == (5000, "POINTS")
    assert (bought["pointsPurchased"], bought["bonusPoints"], bought["totalPoints"]) == (5000, 500, 5500)
    assert bought["wallet"]["usableBalance"] == 5500
    state = wallet(api, user)
    assert (state["usableBalance"], state["totalBalance"], state["pendingBalance"]) == (5500, 5500, 0)
    assert len(state["expiringSoon"]) == 1
    lot = state["expiringSoon"][0]
    assert lot["amount"] == 5500
    assert datetime.fromisoformat(lot["expiresAt"]) == now_of(api) + timedelta(days=365)


def test_declined_purchase_records_a_failed_payment_and_credits_nothing(api: Api, user: str) -> None:
    method = api.add_card(user, POOR_CARD)
    error = api.error(PURCHASE, {"p": "regular", "m": method}, user=user)
    assert error.code == "PAYMENT_FAILED"
    assert error.extensions["declineCode"] == "INSUFFICIENT_FUNDS"
    state = wallet(api, user)
    assert (state["usableBalance"], state["totalBalance"], state["pendingBalance"]) == (0, 0, 0)
    api.settle_read_models()
    payments = api.gql("{ payments { id status failureCode providerFailureCode kind amount } }", user=user)["payments"]
    assert [(p["id"], p["status"], p["failureCode"]) for p in payments] == [
        (error.extensions["paymentId"], "FAILED", "INSUFFICIENT_FUNDS")
    ]
    assert payments[0]["providerFailureCode"] == "REJECT_CARD_PAYMENT"


def test_purchase_with_an_idempotency_key_charges_once(api: Api, user: str) -> None:
    method = api.add_card(user)
    first = api.gql(PURCHASE, {"p": "starter", "m": method, "k": "buy-1"}, user=user)["purchasePoints"]
    again = api.gql(PURCHASE, {"p": "starter", "m": method, "k": "buy-1"}, user=user)["purchasePoints"]
    assert again["payment"]["id"] == first["payment"]["id"]
    assert wallet(api, user)["usableBalance"] == 1000
    assert len([c for c in api.sandbox.charges() if c["orderId"] == first["payment"]["orderId"]]) == 1
    reused = api.error(PURCHASE, {"p": "regular", "m": method, "k": "buy-1"}, user=user)
    assert reused.code == "IDEMPOTENCY_KEY_REUSED"
    assert wallet(api, user)["usableBalance"] == 1000


def test_spend_draws_the_earliest_expiring_lot_first(api: Api, user: str) -> None:
    admin = {"user": "ops", "scope": "admin"}
    api.gql(ADJUST, {"u": user, "a": 300, "r": "goodwill (no expiry)"}, **admin)
    api.gql(REWARD, {"u": user, "a": "referral_signup"}, **admin)  # 500, expires in 365 days
    spent = api.gql(SPEND, {"a": 400, "id": "reading-1"}, user=user)["spendPoints"]
    assert (spent["pointsSpent"], spent["remainingBalance"]) == (400, 400)
    assert (spent["transaction"]["balanceBefore"], spent["transaction"]["balanceAfter"]) == (800, 400)
    lots = wallet(api, user)["expiringSoon"]
    # The reward lot (expiring) was drawn first: 100 of it is left; the adjustment lot never expires.
    assert [lot["amount"] for lot in lots] == [100]


def test_spending_more_than_usable_is_refused_and_spends_nothing(api: Api, user: str) -> None:
    api.gql(ADJUST, {"u": user, "a": 150, "r": "gift"}, user="ops", scope="admin")
    error = api.error(SPEND, {"s": "saju_detailed", "id": "reading-2"}, user=user)
    assert error.code == "INSUFFICIENT_POINTS"
    assert (error.extensions["available"], error.extensions["required"]) == (150, 300)
    state = wallet(api, user)
    assert (state["usableBalance"], state["lifetimeSpent"]) == (150, 0)


def test_the_same_service_id_spends_once(api: Api, user: str) -> None:
    api.gql(ADJUST, {"u": user, "a": 1000, "r": "gift"}, user="ops", scope="admin")
    first = api.gql(SPEND, {"s": "saju_basic", "id": "reading-3"}, user=user)["spendPoints"]
    second = api.gql(SPEND, {"s": "saju_basic", "id": "reading-3"}, user=user)["spendPoints"]
    assert second["transaction"]["id"] == first["transaction"]["id"]
    assert second["remainingBalance"] == first["remainingBalance"] == 900
    assert wallet(api, user)["usableBalance"] == 900


def test_a_repeated_service_id_answers_the_first_spend_even_when_the_wallet_is_empty(api: Api, user: str) -> None:
    api.gql(ADJUST, {"u": user, "a": 100, "r": "gift"}, user="ops", scope="admin")
    first = api.gql(SPEND, {"s": "saju_basic", "id": "reading-4"}, user=user)["spendPoints"]
    assert first["remainingBalance"] == 0
    again = api.gql(SPEND, {"s": "saju_basic", "id": "reading-4"}, user=user)["spendPoints"]
    assert again["transaction"]["id"] == first["transaction"]["id"]
    assert again["remainingBalance"] == 0
    other = api.error(SPEND, {"s": "saju_basic", "id": "reading-5"}, user=user)
    assert other.code == "INSUFFICIENT_POINTS"
    state = wallet(api, user)
    assert (state["usableBalance"], state["lifetimeSpent"]) == (0, 100)


def test_daily_login_once_per_calendar_day(api: Api, user: str) -> None:
    admin = {"user": "ops", "scope": "admin"}
    api.gql(REWARD, {"u": user, "a": "daily_login"}, **admin)
    assert api.error(REWARD, {"u": user, "a": "daily_login"}, **admin).code == "ALREADY_CLAIMED"
    # The clock starts at 10:00 Seoul time; 14:05 later is just past the next local midnight.
    api.gql(ADVANCE, {"to": (now_of(api) + timedelta(hours=14, minutes=5)).isoformat()}, user="ops", scope="admin")
    credited = api.gql(REWARD, {"u": user, "a": "daily_login"}, **admin)["rewardPoints"]
    assert (credited["amount"], credited["balanceAfter"]) == (10, 20)


def test_first_review_once_per_user(api: Api, user: str) -> None:
    admin = {"user": "ops", "scope": "admin"}
    api.gql(REWARD, {"u": user, "a": "first_review"}, **admin)
    api.gql(ADVANCE, {"to": (now_of(api) + timedelta(days=3)).isoformat()}, **admin)
    assert api.error(REWARD, {"u": user, "a": "first_review"}, **admin).code == "ALREADY_CLAIMED"


def test_expiry_sweeps_exactly_the_unspent_points(api: Api, user: str) -> None:
    admin = {"user": "ops", "scope": "admin"}
    api.gql(REWARD, {"u": user, "a": "referral_signup"}, **admin)  # 500 points for 365 days
    api.gql(ADJUST, {"u": user, "a": 70, "r": "never expires"}, **admin)
    api.gql(SPEND, {"a": 120, "id": "reading-4"}, user=user)  # from the reward lot: 380 left there
    before = wallet(api, user)
    runs = api.gql(ADVANCE, {"to": (now_of(api) + timedelta(days=367)).isoformat()}, **admin)["advanceTestClock"]
    assert any(run["job"] == "expire_points" and run["succeeded"] == 1 for run in runs)
    after = wallet(api, user)
    assert before["usableBalance"] - after["usableBalance"] == 380
    assert (after["usableBalance"], after["totalBalance"]) == (70, 70)
    api.settle_read_models()
    expired = api.gql(HISTORY, {"f": {"type": "EXPIRATION"}}, user=user)["wallet"]["transactions"]
    assert [(t["amount"], t["balanceBefore"], t["balanceAfter"]) for t in expired["items"]] == [(-380, 450, 70)]
    # Running the jobs again at the same time expires nothing more.
    again = api.gql("mutation { runScheduledJobs { job processed succeeded } }", user="cron", scope="cron")
    assert wallet(api, user)["totalBalance"] == 70
    assert all(run["succeeded"] == 0 for run in again["runScheduledJobs"])


def test_points_expiring_notice_goes_out_once_a_week_before(api: Api, user: str) -> None:
    api.gql(REWARD, {"u": user, "a": "referral_signup"}, user="ops", scope="admin")  # expires in 365 days
    notices = "query { notifications(first: 50) { kind data } }"
    api.gql(ADVANCE, {"to": (now_of(api) + timedelta(days=357)).isoformat()}, user="ops", scope="admin")
    api.settle_read_models()
    assert [n["kind"] for n in api.gql(notices, user=user)["notifications"]] == ["POINTS_REWARDED"]
    api.gql(ADVANCE, {"to": (now_of(api) + timedelta(days=3)).isoformat()}, user="ops", scope="admin")
    api.gql("mutation { runScheduledJobs { job } }", user="cron", scope="cron")  # a repeated run adds nothing
    api.settle_read_models()
    kinds = [n["kind"] for n in api.gql(notices, user=user)["notifications"]]
    assert kinds == ["POINTS_EXPIRING", "POINTS_REWARDED"]
    expiring = api.gql(notices, user=user)["notifications"][0]["data"]
    assert expiring["points"] == 500
