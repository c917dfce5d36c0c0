"""The spend recorded for one bought service (`serviceId`), once per user (SPEC §4:
spending the same serviceId twice answers the first spend and spends once)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from domain.copying import copy_aggregate
from domain.ids import service_spend_id


class ServiceSpend(Aggregate):
    """The spend recorded for one bought service (`serviceId`), once per user.

    Kept beside the wallet rather than in it, so a wallet's state does not grow
    with every service ever bought; saved in the spend's transaction, so a
    concurrent repeat collides on its insert and answers the first spend."""
    __deepcopy__ = copy_aggregate  # immutable values shared: domain/copying.py


    @staticmethod
    def create_id(user_id: str, service_id: str, **_: Any) -> UUID:
        return service_spend_id(user_id, service_id)

    @event("Recorded")
    def __init__(self, user_id: str, service_id: str, wallet_version: int, at: datetime) -> None:
        self.user_id = user_id
        self.service_id = service_id
        self.wallet_version = wallet_version


# Stored events name the module the aggregate lived in before it had its own.
register_topic("domain.wallet:ServiceSpend", ServiceSpend)
