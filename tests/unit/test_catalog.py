"""Catalog (SPEC §2): built-in values, limit semantics, TOML override and validation."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import domain.catalog as catalog_module
from domain.catalog import Catalog, Plan, PointPackage, RewardActivity, default_catalog, load_catalog
from domain.errors import InvalidInput


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return default_catalog()


def test_plans_in_order_with_spec_prices(cat: Catalog) -> None:
    assert list(cat.plans) == ["free", "basic", "premium", "master"]
    expected = {  # id: (name, monthly, discount %, trial days, annual)
        "free": ("무료 체험", 0, 0, 0, 0),
        "basic": ("기본 운세", 9_900, 20, 7, 95_040),
        "premium": ("프리미엄 운세", 19_900, 25, 7, 179_100),
        "master": ("마스터 운세", 39_900, 30, 7, 335_160),
    }
    for plan_id, (name, monthly, discount, trial, annual) in expected.items():
        plan = cat.plan(plan_id)
        assert (plan.id, plan.name, plan.monthly_price) == (plan_id, name, monthly)
        assert (plan.annual_discount_percent, plan.trial_days) == (discount, trial)
        assert plan.annual_price == annual
        assert plan.price("MONTHLY") == monthly
        assert plan.price("ANNUAL") == annual
        assert plan.active and plan.currency == "KRW"


def test_features_come_from_the_seed(cat: Catalog) -> None:
    assert cat.plan("free").features == ("월 3회 기본 사주 분석", "간단한 타로 리딩", "커뮤니티 읽기 전용", "광고 포함")
    assert len(cat.plan("basic").features) == 5
    assert "1:1 상담 월 2회" in cat.plan("premium").features
    assert cat.plan("master").features[0] == "모든 서비스 무제한"
    for plan in cat.plans.values():
        assert isinstance(plan.features, tuple) and all("\ufffd" not in f for f in plan.features)


def test_annual_price_rounds_to_the_won() -> None:
    # monthly × 12 × (100 − d) is a multiple of 4, so it is never ≡ 50 (mod 100): an
    # annual price is never an exact half; round_half_away's halves are tested in test_periods.
    def plan(monthly: int, discount: int) -> Plan:
        return Plan("p", "p", monthly, discount, 0, (), {})

    assert plan(1_001, 5).annual_price == 11_411  # 11,411.4
    assert plan(1, 87).annual_price == 2  # 1.56
    assert plan(1, 79).annual_price == 3  # 2.52
    assert plan(5, 99).annual_price == 1  # 0.6
    assert plan(1, 96).annual_price == 0  # 0.48
    assert plan(125, 99).annual_price == 15  # 15.0
    for monthly in range(0, 2_000, 7):
        for discount in range(0, 100, 3):
            exact = monthly * 12 * (100 - discount)
            assert plan(monthly, discount).annual_price == (2 * exact + 100) // 200


def test_price_refuses_unknown_cycle(cat: Catalog) -> None:
    with pytest.raises(InvalidInput):
        cat.plan("basic").price("WEEKLY")


def test_limit_semantics(cat: Catalog) -> None:
    free, basic, premium, master = (cat.plan(p) for p in ("free", "basic", "premium", "master"))
    assert free.limit_for("saju_calculations") == 3
    assert free.limit_for("tarot_readings") == 5
    assert free.limit_for("community_posts") == 0  # listed as 0: not allowed
    assert free.limit_for("zodiac_analyses") == 0  # unlisted: not allowed
    assert basic.limit_for("saju_calculations") == 50
    assert basic.limit_for("tarot_readings") is None
    assert basic.limit_for("zodiac_analyses") == 10
    assert basic.limit_for("consultation_sessions") == 0
    assert premium.limit_for("saju_calculations") is None
    assert premium.limit_for("astrology_readings") == 20
    assert premium.limit_for("fengshui_analyses") == 10
    assert premium.limit_for("consultation_sessions") == 2
    assert premium.limit_for("community_posts") == 0
    assert master.unlimited_all
    assert master.limit_for("consultation_sessions") is None
    assert master.limit_for("community_posts") is None  # unlisted but unlimited_all
    assert master.limit_for("anything_at_all") is None
    assert not any(p.unlimited_all for p in (free, basic, premium))


def test_known_service_is_the_quota_vocabulary(cat: Catalog) -> None:
    for service in ("saju_calculations", "tarot_readings", "zodiac_analyses", "community_posts",
                    "astrology_readings", "fengshui_analyses", "consultation_sessions"):
        assert cat.known_service(service)
    assert not cat.known_service("saju_basic")  # a point-priced service, not a quota
    assert not cat.known_service("saju_calculation")


def test_packages_costs_rewards(cat: Catalog) -> None:
    assert list(cat.point_packages) == ["starter", "regular", "premium", "mega"]
    assert cat.package("starter") == PointPackage("starter", 1_000, 0, 1_000)
    assert cat.package("regular").total == 5_500
    assert cat.package("premium").total == 11_500 and cat.package("premium").price == 10_000
    assert cat.package("mega").total == 60_000 and cat.package("mega").price == 50_000
    assert dict(cat.service_costs) == {
        "saju_basic": 100, "saju_detailed": 300, "saju_premium": 500, "tarot_single": 200,
        "tarot_three": 500, "tarot_celtic": 1000, "zodiac_basic": 150, "zodiac_compatibility": 300,
        "astrology_reading": 400, "fengshui_analysis": 600, "consultation_30min": 5000,
        "consultation_60min": 9000, "custom_report": 3000,
    }
    assert cat.service_cost("consultation_60min") == 9_000
    assert list(cat.reward_activities) == ["daily_login", "first_review", "referral_signup", "community_post",
                                           "community_comment", "social_share", "survey_complete"]
    assert cat.reward("daily_login") == RewardActivity("daily_login", 10, True, False)
    assert cat.reward("first_review") == RewardActivity("first_review", 100, False, True)
    assert cat.reward("referral_signup") == RewardActivity("referral_signup", 500, False, False)
    assert [r.points for r in cat.reward_activities.values()] == [10, 100, 500, 20, 5, 30, 50]


@pytest.mark.parametrize("call", [
    lambda c: c.plan("gold"), lambda c: c.package("huge"),
    lambda c: c.service_cost("palm_reading"), lambda c: c.reward("birthday"),
    lambda c: c.plan(None),
])
def test_unknown_ids_are_invalid_input(cat: Catalog, call) -> None:
    with pytest.raises(InvalidInput):
        call(cat)


def test_catalog_is_immutable(cat: Catalog) -> None:
    with pytest.raises(TypeError):
        cat.plans["x"] = cat.plan("free")  # type: ignore[index]
    with pytest.raises(TypeError):
        cat.plan("free").limits["saju_calculations"] = 99  # type: ignore[index]
    with pytest.raises(AttributeError):
        cat.plan("free").monthly_price = 1  # type: ignore[misc]
    limits = {"a": 1}
    plan = Plan("p", "p", 100, 0, 0, ["f"], limits)  # type: ignore[arg-type]
    limits["a"] = 2
    assert plan.limit_for("a") == 1 and plan.features == ("f",)


def test_load_none_is_default() -> None:
    assert load_catalog(None) is default_catalog()


OVERRIDE = """
[[plans]]
id = "solo"
name = "Solo"
monthly_price = 5000
annual_discount_percent = 10
trial_days = 3
features = ["one"]
[plans.limits]
saju_calculations = -1
tarot_readings = "unlimited"
zodiac_analyses = 2

[[plans]]
id = "legacy"
name = "Legacy"
monthly_price = 1000
active = false

[[point_packages]]
id = "tiny"
points = 10
price = 10

[service_costs]
palm_reading = 42

[[reward_activities]]
activity = "birthday"
points = 7
once_per_user = true
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "catalog.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_toml_override_replaces_built_in(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, OVERRIDE))
    assert list(cat.plans) == ["solo", "legacy"]
    solo = cat.plan("solo")
    assert solo.annual_price == 54_000 and solo.trial_days == 3 and solo.features == ("one",)
    assert dict(solo.limits) == {"saju_calculations": None, "tarot_readings": None, "zodiac_analyses": 2}
    assert solo.limit_for("community_posts") == 0
    legacy = cat.plan("legacy")
    assert not legacy.active and legacy.annual_price == 12_000 and legacy.features == () and dict(legacy.limits) == {}
    assert cat.package("tiny").total == 10
    assert dict(cat.service_costs) == {"palm_reading": 42}
    assert cat.reward("birthday").once_per_user
    for gone in (lambda: cat.plan("basic"), lambda: cat.package("starter"),
                 lambda: cat.service_cost("saju_basic"), lambda: cat.reward("daily_login")):
        with pytest.raises(InvalidInput):
            gone()
    assert cat.known_service("zodiac_analyses") and not cat.known_service("community_posts")
    assert default_catalog().plan("basic").monthly_price == 9_900  # built-in untouched


def test_only_plans_are_required(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, '[[plans]]\nid = "x"\nname = "X"\nmonthly_price = 0\n'))
    assert list(cat.plans) == ["x"] and not cat.point_packages and not cat.service_costs


BAD = {
    "not toml": "this is = = not toml",
    "no plans": "[service_costs]\na = 1\n",
    "empty plans": "plans = []\n",
    "duplicate plan": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[[plans]]\nid="a"\nname="B"\nmonthly_price=2\n',
    "negative price": '[[plans]]\nid="a"\nname="A"\nmonthly_price=-1\n',
    "float price": '[[plans]]\nid="a"\nname="A"\nmonthly_price=9.9\n',
    "string price": '[[plans]]\nid="a"\nname="A"\nmonthly_price="9900"\n',
    "bool price": '[[plans]]\nid="a"\nname="A"\nmonthly_price=true\n',
    "discount 100": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\nannual_discount_percent=100\n',
    "empty id": '[[plans]]\nid=""\nname="A"\nmonthly_price=1\n',
    "missing name": '[[plans]]\nid="a"\nmonthly_price=1\n',
    "unknown plan key": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\nprize=3\n',
    "unknown top key": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[[packages]]\nid="p"\n',
    "negative limit": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[plans.limits]\nx=-2\n',
    "word limit": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[plans.limits]\nx="lots"\n',
    "finite limit on unlimited_all":
        '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\nunlimited_all=true\n[plans.limits]\nx=3\n',
    "bad currency": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\ncurrency="won"\n',
    "features not strings": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\nfeatures=[1]\n',
    "zero package price":
        '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[[point_packages]]\nid="p"\npoints=1\nprice=0\n',
    "duplicate package": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n'
                         '[[point_packages]]\nid="p"\npoints=1\nprice=1\n[[point_packages]]\nid="p"\npoints=2\nprice=2\n',
    "zero cost": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[service_costs]\nx=0\n',
    "duplicate toml key": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[service_costs]\nx=1\nx=2\n',
    "zero reward": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n[[reward_activities]]\nactivity="r"\npoints=0\n',
    "both once flags": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n'
                       '[[reward_activities]]\nactivity="r"\npoints=1\nonce_per_day=true\nonce_per_user=true\n',
    "duplicate reward": '[[plans]]\nid="a"\nname="A"\nmonthly_price=1\n'
                        '[[reward_activities]]\nactivity="r"\npoints=1\n[[reward_activities]]\nactivity="r"\npoints=2\n',
    "plans not array": '[plans]\nid="a"\n',
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_bad_catalog_is_value_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match="catalog .*catalog.toml"):
        load_catalog(path)


def test_missing_file_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog(str(tmp_path / "nope.toml"))


def test_domain_modules_import_only_stdlib() -> None:
    allowed = {"__future__", "calendar", "collections", "dataclasses", "datetime", "decimal", "fractions",
               "functools", "importlib", "tomllib", "types", "typing", "zoneinfo", "domain"}
    for module in ("catalog", "periods"):
        source = Path(catalog_module.__file__).with_name(f"{module}.py").read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{module}.py imports {roots - allowed}"
