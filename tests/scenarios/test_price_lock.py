"""The price is locked at subscription time: a later catalog does not change it (SPEC §3)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from tests.scenarios.helpers import advance, seoul, subscribe, subscription


def test_a_new_catalog_price_does_not_touch_existing_subscriptions(api_factory: Any, user: str, tmp_path: Path) -> None:
    api = api_factory()
    sub = subscribe(api, user, "basic", paymentMethodId=api.add_card(user), skipTrial=True)
    api.close()

    default = resources.files("domain").joinpath("catalog_default.toml").read_text(encoding="utf-8")
    assert default.count("monthly_price = 9900") == 1
    dearer = tmp_path / "catalog.toml"
    dearer.write_text(default.replace("monthly_price = 9900", "monthly_price = 12900"), encoding="utf-8")
    api = api_factory(catalog=str(dearer))  # a restart on the same ledger with the new catalog
    assert api.gql("{ catalog { plans { id monthlyPrice } } }")["catalog"]["plans"][1] == {"id": "basic", "monthlyPrice": 12900}

    advance(api, seoul(2026, 4, 1, 0, 30))
    renewed = subscription(api, user, sub["id"])
    assert (renewed["price"], [p["amount"] for p in renewed["payments"]]) == (9900, [9900, 9900])
    newcomer = "newcomer-" + user
    fresh = subscribe(api, newcomer, "basic", paymentMethodId=api.add_card(newcomer), skipTrial=True)
    assert fresh["price"] == 12900
