"""The daily runs' candidates from the subscriptions read model: the charge run streams its
due subscriptions in keyset pages (every one once); the 09:00 run looks only at the days a
reminder may be owed for."""
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


def test_reminder_candidates_are_the_subscriptions_a_reminder_may_be_owed_for_today(api: Api, user: str) -> None:
    """Trials ending 2026-03-08 (Seoul) and a monthly renewal on 2026-04-01: candidates on
    the mornings 7, 3 and 1 days before each, and on no other morning."""
    trials = {subscribe(api, f"{user}-t{i}", "basic", paymentMethodId=api.add_card(f"{user}-t{i}"))["id"] for i in range(3)}
    renewal = subscribe(api, f"{user}-a", "basic", paymentMethodId=api.add_card(f"{user}-a"), skipTrial=True)["id"]
    api.settle_read_models()
    queries, tz = api.built.services.subscriptions, api.built.ledger.tz
    found = {day: set(queries.reminder_candidates(seoul(2026, 3, day, 9), tz)) for day in range(1, 9)}
    assert found == {1: trials, 2: set(), 3: set(), 4: set(), 5: trials, 6: set(), 7: trials, 8: set()}
    found = {day: set(queries.reminder_candidates(seoul(2026, 3, day, 9), tz)) for day in range(22, 32)}
    assert found == {day: {renewal} if day in (25, 29, 31) else set() for day in range(22, 32)}
