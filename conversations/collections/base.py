"""What every part of the collections flow reads: its runtime, today's overdue customers, users.

:class:`CollectionsBase` is the base of the flow's parts (``overdue``/``paid``,
suspend/reactivate, the daily run); :class:`~conversations.collections.Collections`
puts them together.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from bot.config import CollectionsPolicy, CollectionsStage, Settings, configured_user
from bot.domain import Customer, NotFound, User
from bot.i18n import _
from bot.partner_center import PartnerCenterClient
from bot.receivables import CustomerOverdue, overdue_by_customer
from bot.storage import Store
from conversations.collections.state import _default_owner, load_receivables, local_today
from conversations.text import u

if TYPE_CHECKING:
    from conversations.runtime import Runtime


class CollectionsBase:
    """The runtime's store, settings, policy and Partner Center client; who owes what."""

    runtime: Runtime
    store: Store
    settings: Settings
    policy: CollectionsPolicy
    client: PartnerCenterClient

    # ---- reading -------------------------------------------------------------------
    def today(self, now: datetime) -> date:
        return local_today(now, self.settings)

    def overdue(self, now: datetime) -> list[CustomerOverdue]:
        return overdue_by_customer(load_receivables(self.store), self.today(now), self.stages)

    @property
    def stages(self) -> tuple[CollectionsStage, ...]:
        return self.policy.stages

    def overdue_of(self, customer_id: str, now: datetime) -> CustomerOverdue | None:
        return next((c for c in self.overdue(now) if c.customer_id == customer_id), None)

    async def _user(self, user_id: str) -> User | None:
        user = await self.store.get_user(user_id)
        if user is not None:
            return user
        cfg = self.settings.user_by_name(user_id)
        if cfg is None:
            return None
        user = configured_user(cfg, self.settings.time_zone)
        await self.store.save_user(user)
        return user

    async def _owner_id(self, customer: Customer) -> str | None:
        if customer.owner:
            return customer.owner
        owner = _default_owner(self.settings)
        if owner:
            return owner
        leads = await self.runtime.scheduler.leads()
        return leads[0].id if leads else None

    async def _names(self) -> dict[str, str]:
        return self.store.user_names()

    async def _customer(self, name: str) -> Customer:
        customer = await self.runtime.desk.directory.find_customer(name)
        if customer is None:
            raise NotFound(
                _("I don't know a customer called {name}. `overdue` lists who owes what.").format(
                    name=u(name)
                )
            )
        return customer
