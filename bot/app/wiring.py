"""Wiring: the desk's runtime with every flow module registered, for ``serve``, ``chat`` and tools.

The list of flow modules is explicit (a missing one fails at import, at start),
and each is handed the runtime it plugs into (its commands, forms, job types
and the services it uses).
"""

from __future__ import annotations

from types import ModuleType

from bot.clock import Clock
from bot.config import Settings
from bot.storage import Store
from conversations import collections, escalation
from conversations.runtime import Runtime

# Flow modules that add commands, forms and job types: each has ``register(runtime)``.
FLOWS: tuple[ModuleType, ...] = (escalation, collections)


def build_runtime(settings: Settings, store: Store, clock: Clock | None = None) -> Runtime:
    """The desk's runtime on ``store`` with every flow module registered."""
    runtime = Runtime(settings, store, clock)
    for flow in FLOWS:
        flow.register(runtime)
    return runtime
