"""The catalog (SPEC §2): plans, point packages, service costs and reward activities.

The built-in catalog is `catalog_default.toml` (package data, read through
importlib.resources); `SUBLEDGER_CATALOG` names a TOML file in the same format
that *replaces* it as a whole. Everything is immutable and keeps file order.

Two vocabularies of "service" exist and are kept apart on purpose:
- usage-quota services (plan `limits`: saju_calculations, tarot_readings, …), which
  `recordUsage` counts; `Catalog.known_service` answers for these only, so a typo
  is refused instead of counting as "unlisted" (0) or, on master, unlimited;
- point-priced services (`service_costs`: saju_basic, tarot_single, …), which
  `spendPoints` prices; `Catalog.service_cost` answers for these.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from domain.errors import InvalidInput
from domain.periods import round_half_away

__all__ = [
    "Plan", "PointPackage", "RewardActivity", "Catalog",
    "default_catalog", "load_catalog", "catalog_from_mapping",
]


def _is_unlimited(raw: Any) -> bool:
    # TOML has no null: "unlimited", or -1 as the seed writes it.
    return raw == "unlimited" or (type(raw) is int and raw == -1)


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    monthly_price: int
    annual_discount_percent: int
    trial_days: int
    features: tuple[str, ...]
    limits: Mapping[str, int | None]  # service -> uses per monthly window; None = unlimited
    active: bool = True
    unlimited_all: bool = False  # every service unlimited (master)
    currency: str = "KRW"

    def __post_init__(self) -> None:
        # Freeze caller-supplied containers so a shared Plan can never be mutated.
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))

    @property
    def annual_price(self) -> int:
        """monthly × 12 × (100 − discount) / 100, halves away from zero, to the won."""
        return round_half_away(self.monthly_price * 12 * (100 - self.annual_discount_percent), 100)

    def price(self, cycle: str) -> int:
        value = getattr(cycle, "value", cycle)  # tolerate str-based enums
        if value == "MONTHLY":
            return self.monthly_price
        if value == "ANNUAL":
            return self.annual_price
        raise InvalidInput(f"unknown billing cycle {cycle!r} (expected MONTHLY or ANNUAL)")

    def limit_for(self, service: str) -> int | None:
        """Uses per window: None = unlimited, 0 = not allowed (unlisted, unless unlimited_all)."""
        if service in self.limits:
            return self.limits[service]
        return None if self.unlimited_all else 0


@dataclass(frozen=True)
class PointPackage:
    id: str
    points: int
    bonus: int
    price: int

    @property
    def total(self) -> int:
        return self.points + self.bonus


@dataclass(frozen=True)
class RewardActivity:
    activity: str
    points: int
    once_per_day: bool = False
    once_per_user: bool = False


@dataclass(frozen=True)
class Catalog:
    plans: Mapping[str, Plan]
    point_packages: Mapping[str, PointPackage]
    service_costs: Mapping[str, int]
    reward_activities: Mapping[str, RewardActivity]

    def __post_init__(self) -> None:
        for name in ("plans", "point_packages", "service_costs", "reward_activities"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except (KeyError, TypeError):
            raise InvalidInput(f"unknown plan {plan_id!r}") from None

    def package(self, package_id: str) -> PointPackage:
        try:
            return self.point_packages[package_id]
        except (KeyError, TypeError):
            raise InvalidInput(f"unknown point package {package_id!r}") from None

    def service_cost(self, service: str) -> int:
        try:
            return self.service_costs[service]
        except (KeyError, TypeError):
            raise InvalidInput(f"unknown service {service!r}") from None

    def reward(self, activity: str) -> RewardActivity:
        try:
            return self.reward_activities[activity]
        except (KeyError, TypeError):
            raise InvalidInput(f"unknown reward activity {activity!r}") from None

    def known_service(self, service: str) -> bool:
        """True when `service` is a usage-quota service: named in some plan's limits (any plan,
        active or not). Point-priced `service_costs` names are a different vocabulary."""
        return any(service in plan.limits for plan in self.plans.values())


# ------------------------------------------------------------------ loading

@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    text = resources.files("domain").joinpath("catalog_default.toml").read_text(encoding="utf-8")
    return _parse(text, "built-in catalog_default.toml")


def load_catalog(path: str | None) -> Catalog:
    """None → the built-in catalog; otherwise the TOML file at `path` replaces it.
    Any problem (missing file, bad TOML, bad values) is a ValueError naming the file."""
    if path is None:
        return default_catalog()
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ValueError(f"catalog {path}: cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"catalog {path}: not UTF-8: {exc}") from exc
    return _parse(text, str(path))


def _parse(text: str, source: str) -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"catalog {source}: invalid TOML: {exc}") from exc
    return catalog_from_mapping(data, source)


def catalog_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Catalog:
    """Validate parsed TOML (or an equivalent dict) and build a Catalog; ValueError if invalid."""
    v = _Validator(source)
    v.keys(data, "catalog", required={"plans"},
           optional={"point_packages", "service_costs", "reward_activities"})
    plans = v.unique_list(data["plans"], "plans", "id", v.plan, non_empty=True)
    packages = v.unique_list(data.get("point_packages", []), "point_packages", "id", v.package)
    rewards = v.unique_list(data.get("reward_activities", []), "reward_activities", "activity", v.reward)
    costs_raw = v.table(data.get("service_costs", {}), "service_costs")
    costs = {v.ident(name, "service_costs key"): v.integer(cost, f"service_costs.{name}", minimum=1)
             for name, cost in costs_raw.items()}
    return Catalog(plans=plans, point_packages=packages, service_costs=costs, reward_activities=rewards)


class _Validator:
    """Field checks with messages that name the file and the offending entry."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str) -> ValueError:
        return ValueError(f"catalog {self.source}: {message}")

    def table(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(f"{where} must be a table, got {type(value).__name__}")
        return value

    def keys(self, value: Any, where: str, required: set[str], optional: set[str]) -> None:
        table = self.table(value, where)
        missing = sorted(required - table.keys())
        unknown = sorted(table.keys() - required - optional)
        if missing:
            raise self.fail(f"{where}: missing {', '.join(missing)}")
        if unknown:
            raise self.fail(f"{where}: unknown key(s) {', '.join(unknown)}")

    def ident(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise self.fail(f"{where} must be a non-empty string without surrounding spaces, got {value!r}")
        return value

    def integer(self, value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{where} must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.fail(f"{where} must be {bound}, got {value}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{where} must be true or false, got {value!r}")
        return value

    def unique_list(self, value: Any, where: str, key: str, build, non_empty: bool = False) -> dict:
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.fail(f"{where} must be an array of tables ([[{where}]])")
        if non_empty and not value:
            raise self.fail(f"{where} must not be empty")
        out: dict[str, Any] = {}
        for position, item in enumerate(value):
            ident = self.ident(item.get(key), f"{where}[{position}].{key}")
            if ident in out:
                raise self.fail(f"{where}: duplicate {key} {ident!r}")
            out[ident] = build(item, f"{where}[{position}] ({ident})")
        return out

    def plan(self, item: Mapping[str, Any], where: str) -> Plan:
        self.keys(item, where, required={"id", "name", "monthly_price"},
                  optional={"annual_discount_percent", "trial_days", "features", "limits",
                            "active", "unlimited_all", "currency"})
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            raise self.fail(f"{where}.name must be a non-empty string")
        features = item.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
            raise self.fail(f"{where}.features must be an array of non-empty strings")
        currency = item.get("currency", "KRW")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise self.fail(f"{where}.currency must be a 3-letter ISO code, got {currency!r}")
        unlimited_all = self.boolean(item.get("unlimited_all", False), f"{where}.unlimited_all")
        limits: dict[str, int | None] = {}
        for service, raw in self.table(item.get("limits", {}), f"{where}.limits").items():
            self.ident(service, f"{where}.limits key")
            at = f"{where}.limits.{service}"
            limits[service] = None if _is_unlimited(raw) \
                else self.integer(raw, at + ' (or "unlimited")', minimum=0)
            if unlimited_all and limits[service] is not None:
                # A finite limit would contradict "every service unlimited".
                raise self.fail(f"{at}: a plan with unlimited_all = true cannot set a finite limit")
        return Plan(
            id=item["id"],
            name=name,
            monthly_price=self.integer(item["monthly_price"], f"{where}.monthly_price", minimum=0),
            # < 100: a 100 % discount would make a paid plan's annual period free.
            annual_discount_percent=self.integer(item.get("annual_discount_percent", 0),
                                                 f"{where}.annual_discount_percent", minimum=0, maximum=99),
            trial_days=self.integer(item.get("trial_days", 0), f"{where}.trial_days", minimum=0, maximum=365),
            features=tuple(features),
            limits=limits,
            active=self.boolean(item.get("active", True), f"{where}.active"),
            unlimited_all=unlimited_all,
            currency=currency,
        )

    def package(self, item: Mapping[str, Any], where: str) -> PointPackage:
        self.keys(item, where, required={"id", "points", "price"}, optional={"bonus"})
        return PointPackage(
            id=item["id"],
            points=self.integer(item["points"], f"{where}.points", minimum=1),
            bonus=self.integer(item.get("bonus", 0), f"{where}.bonus", minimum=0),
            price=self.integer(item["price"], f"{where}.price", minimum=1),
        )

    def reward(self, item: Mapping[str, Any], where: str) -> RewardActivity:
        self.keys(item, where, required={"activity", "points"}, optional={"once_per_day", "once_per_user"})
        per_day = self.boolean(item.get("once_per_day", False), f"{where}.once_per_day")
        per_user = self.boolean(item.get("once_per_user", False), f"{where}.once_per_user")
        if per_day and per_user:
            raise self.fail(f"{where}: once_per_day and once_per_user are exclusive")
        return RewardActivity(
            activity=item["activity"],
            points=self.integer(item["points"], f"{where}.points", minimum=1),
            once_per_day=per_day,
            once_per_user=per_user,
        )
