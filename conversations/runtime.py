"""The running desk: the kernel plus the conversation pipeline, shared by ``serve`` and ``chat``.

:class:`Runtime` extends the channel-neutral :class:`~bot.kernel.runtime.Kernel`
(request queue, delivery, jobs) with the :class:`~conversations.desk.Desk` and
the case cards of scheduled messages. Flow modules (escalation, collections)
are registered on it by the composition root (``bot.app.wiring``), which
names them explicitly.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from bot.clock import Clock
from bot.config import Settings
from bot.domain import Actor, User
from bot.i18n import _, use_locale
from bot.kernel.model import ActionRef, Button, Message, Reply
from bot.kernel.runtime import Kernel
from bot.storage import Store
from conversations.cards import case_card, local_time
from conversations.desk import Desk, Result
from conversations.directory import tenant_key
from conversations.registry import Registry

F = TypeVar("F")


class Runtime(Kernel):
    """Everything a running desk needs, independent of HTTP: the kernel and the desk."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock | None = None,
        commands: Registry | None = None,
    ) -> None:
        super().__init__(settings, store, clock)
        self.desk = Desk(store, settings, self.clock, commands)
        self.desk.scheduler_view = self._pending_for
        self._flows: dict[type, object] = {}  # each registered flow module's object, by type

    def add_flow(self, flow: object) -> None:
        """Keep a flow module's object (its ``register`` calls this): found by :meth:`flow`."""
        self._flows[type(flow)] = flow

    def flow(self, kind: type[F]) -> F:
        """The registered flow object of type ``kind`` (the composition root registered it)."""
        found = self._flows.get(kind)
        if not isinstance(found, kind):
            raise LookupError(f"no {kind.__name__} is registered on this runtime")
        return found

    async def handle(self, msg: Message) -> Result:
        """One message through the desk; the jobs it made due run (or are woken) after."""
        result = await self.desk.handle(msg)
        await self.changed()
        return result

    async def _pending_for(self, user: User, until: datetime) -> list[tuple[datetime, str, str]]:
        """The ``reminders`` command: what is pending for ``user``, each reminder once."""
        return await self.scheduler.due_for(user, until, repeats=False)

    async def reminder_lines(self, name: str, when: datetime) -> list[str]:
        """What is due for ``name`` at ``when``: ``time · case · why`` in their own time zone."""
        found = await self.desk.directory.find_person(name)
        if found is None:
            return []
        items = await self.scheduler.due_for(found, when)
        return [f"{local_time(t, found.time_zone)} · {case} · {why}" for t, case, why in items]

    async def render_job(
        self, user: User, text: str, case_number: int | None, kind: str
    ) -> list[Reply]:
        """A scheduled message for its recipient: the text, and the case card with its buttons."""
        with use_locale(user.locale):
            reply = Reply(text=text)
            case = await self.store.get_case(case_number) if case_number else None
            if case is not None:
                customer = await self.store.get_customer(case.customer_id)
                names = self.store.user_names()
                viewer = Actor(user.id, user.role, "reminder", user.tenant_id, user.display_name)
                card = case_card(
                    case,
                    customer,
                    viewer,
                    user.time_zone,
                    names,
                    self.clock.now(),
                    tenant_key(customer) if customer else None,
                )
                if kind == "loop":
                    # The close-the-loop DM: exactly Customer informed, Snooze, Reassign.
                    wanted = {"informed", "assign"}
                    card.buttons = [b for b in card.buttons if b.action.name in wanted]
                    card.buttons.insert(
                        1,
                        Button(_("Snooze"), ActionRef("snooze", case.id, case.stage)),
                    )
                reply.card = card
            return [reply]


__all__ = ["Runtime"]
