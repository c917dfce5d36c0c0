"""The charge run streams its candidates in keyset pages: every due subscription once."""
from __future__ import annotations

from tests.api.conftest import Api
from tests.scenarios.helpers import seoul, subscribe


def test_due_pages_cover_every_candidate_once(api: Api, user: str) -> None:
    ids = {subscribe(api, f"{user}-{i}", "basic", paymentMethodId=api.add_card(f"{user}-{i}"))["id"] for i in range(7)}
    api.settle_read_models()
    queries, tz = api.built.services.subscriptions, api.built.ledger.tz
    day = seoul(2026, 3, 8)  # the trials' end day
    assert queries.count_due_for_charge(day, tz) == 7
    seen, after = [], None
    while page := queries.due_for_charge_page(day, tz, after, limit=2):
        seen += [subscription_id for _, subscription_id in page]
        after = page[-1]
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    assert queries.due_for_charge_page(seoul(2026, 3, 7), tz, None) == []  # the day before: nothing due
