"""The settle job resolves payments left PENDING by a crash, asking the gateway,
never charging again (SPEC §5). Real ledger, real sandbox, both databases."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from domain.ports import ChargeStatus
from tests.api.conftest import Api

ADVANCE = "mutation($t: DateTime!) { advanceTestClock(to: $t) { job processed succeeded failed } }"


def pending_purchase(api: Api, user: str, *, charge_at_gateway: bool) -> str:
    """A purchase whose process died after recording PENDING — before, or after, the gateway charged."""
    method = api.add_card(user)
    built = api.built
    now = built.clock.now()
    payment = built.ledger.purchases.begin_points_purchase(user, "regular", method, now, None)
    if charge_at_gateway:
        card = built.ledger.customers.payment_method(user, method)
        result = asyncio.run(
            built.gateways["SANDBOX"].charge(card["billing_key"], card["customer_key"], payment.amount, payment.order_id, "x")
        )
        assert result.status == ChargeStatus.APPROVED
    return str(payment.id)


def run_next_midnight(api: Api) -> list[dict]:
    to = api.built.clock.now() + timedelta(days=1)
    return api.gql(ADVANCE, {"t": to.isoformat()}, user="ops", scope="admin")["advanceTestClock"]


def test_a_charge_the_gateway_made_is_settled_as_succeeded(api: Api, user: str) -> None:
    payment_id = pending_purchase(api, user, charge_at_gateway=True)
    wallet = api.gql("{ wallet { usableBalance pendingBalance } }", user=user)["wallet"]
    assert wallet == {"usableBalance": 0, "pendingBalance": 5500}
    runs = run_next_midnight(api)
    settle = next(r for r in runs if r["job"] == "settle_stale_payments")
    assert (settle["processed"], settle["succeeded"], settle["failed"]) == (1, 1, 0)
    payment = api.built.ledger.payment(payment_id)
    assert payment.status == "SUCCEEDED"
    wallet = api.gql("{ wallet { usableBalance pendingBalance } }", user=user)["wallet"]
    assert wallet == {"usableBalance": 5500, "pendingBalance": 0}
    assert len([c for c in api.sandbox.charges() if c["orderId"] == payment.order_id]) == 1
    again = next(r for r in run_next_midnight(api) if r["job"] == "settle_stale_payments")
    assert again["processed"] == 0


def test_a_charge_that_never_reached_the_gateway_fails_with_network_error(api: Api, user: str) -> None:
    payment_id = pending_purchase(api, user, charge_at_gateway=False)
    run_next_midnight(api)
    payment = api.built.ledger.payment(payment_id)
    assert (payment.status, payment.failure_code) == ("FAILED", "NETWORK_ERROR")
    assert api.gql("{ wallet { usableBalance pendingBalance } }", user=user)["wallet"] == {
        "usableBalance": 0,
        "pendingBalance": 0,
    }
    assert api.sandbox.charges() == []
