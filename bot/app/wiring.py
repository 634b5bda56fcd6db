"""Wiring: the desk's runtime with every flow module registered, for ``serve``, ``chat`` and tools.

The list of flow modules is explicit (a missing one fails at import, at start),
and each is handed the runtime it plugs into (its commands, forms, job types)
and the services it uses: the store, settings and clock through the runtime,
and the one Partner Center client every flow shares (one token cache, one
HTTP session, closed when the runtime closes).
"""

from __future__ import annotations

from types import ModuleType

from bot.clock import Clock
from bot.config import Settings
from bot.partner_center import PartnerCenterClient
from bot.storage import Store
from conversations import collections, escalation
from conversations.runtime import Runtime

# Flow modules that add commands, forms and job types: ``register(runtime, partner_center)``.
FLOWS: tuple[ModuleType, ...] = (escalation, collections)


def build_runtime(settings: Settings, store: Store, clock: Clock | None = None) -> Runtime:
    """The desk's runtime on ``store`` with every flow module registered."""
    runtime = Runtime(settings, store, clock)
    wire_flows(runtime)
    return runtime


def wire_flows(runtime: Runtime) -> None:
    """Register every flow module on ``runtime``, with the Partner Center client they share."""
    partner_center = PartnerCenterClient(runtime.settings, clock=runtime.clock)
    runtime.closers.append(partner_center.close)
    for flow in FLOWS:
        flow.register(runtime, partner_center)
