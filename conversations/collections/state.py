"""What the collections flow stores, and the helpers every part of it shares.

The job keys and types, the flow's tables (declared when this module is
imported, before a store opens), today in the desk's time zone, the
append-only audit entries, a customer's collections state (``customer:<id>``:
the stages already fired, the subscription status) read and written with its
write counter (``version``), the owner's DM jobs, and what a customer with nothing overdue any more
gets: its stages start over and Reactivate is offered.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime
from time import time_ns
from typing import Any

from bot.config import Settings
from bot.domain import Customer, Role
from bot.kernel.scheduler import iso
from bot.receivables import Receivable
from bot.storage import COLLECTIONS_TABLES, Op, Store, declare_tables
from bot.workhours import zone_or_utc

RUN_KEY = "collections:run"
RUN_TYPE = "collections_run"
DM_TYPE = "collections_dm"
REACTIVATE = "reactivate"

_AUDIT_SEQ = itertools.count()


# The flow's tables: declared when this module is imported (before a store opens).
declare_tables(*COLLECTIONS_TABLES)


# ---- small helpers shared by the import (no runtime) and the flow --------------------
def local_today(now: datetime, settings: Settings) -> date:
    """Today in the desk's time zone: days past due are counted in it."""
    return now.astimezone(zone_or_utc(settings.time_zone)).date()


def audit_op(
    now: datetime, actor: str, channel: str, action: str, subject: str, **details: Any
) -> Op:
    """One append-only audit entry (``expect=None``: an entry is never overwritten)."""
    # Sorted by time; within one instant (a fake clock) by the order they were made.
    key = f"{iso(now)}|{time_ns():020d}|{next(_AUDIT_SEQ):08d}|{uuid.uuid4().hex[:8]}"
    doc = {
        "at": iso(now),
        "actor": actor,
        "channel": channel,
        "action": action,
        "subject": subject,
        "details": details,
    }
    return Store.audit_entry_op(key, doc)


def audit_log(store: Store, subject: str | None = None) -> list[dict[str, Any]]:
    """The audit entries, oldest first (optionally of one subject: a customer id, a file)."""
    entries = store.audit_entries()
    return [dict(d) for d in entries if subject is None or d.get("subject") == subject]


def load_receivables(store: Store) -> list[Receivable]:
    return [Receivable.from_doc(d) for d in store.receivable_docs().values()]


def _state(store: Store, customer_id: str) -> dict[str, Any]:
    doc = store.collections_state(customer_id)
    return _copy(doc) if doc else {"customer": customer_id, "episode": 1, "stages": {}}


def _state_op(old: dict[str, Any], new: dict[str, Any]) -> Op:
    """Write a customer's collections state if nobody changed it since ``old`` was read."""
    version = old.get("version")
    doc = {**new, "version": int(version or 0) + 1}
    return Store.collections_state_op(new["customer"], doc, expect=version)


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(doc)))


def _default_owner(settings: Settings) -> str | None:
    return next((u.name for u in settings.users if u.role == Role.LEAD), None)


def _dm_op(
    customer_id: str, stage: str, episode: int, user_id: str, due: datetime
) -> tuple[str, Op]:
    key = f"collections:dm:{customer_id}:{episode}:{stage}:{user_id}"
    doc = {
        "type": DM_TYPE,
        "user_id": user_id,
        "customer": customer_id,
        "stage": stage,
        "episode": episode,
        "due": iso(due),
    }
    return key, Store.job_op(key, doc)


def _offer_recipients(store: Store, settings: Settings, customer: Customer) -> list[str]:
    """Who is offered Reactivate: the owner, and the first lead if the owner is not a lead."""
    owner = customer.owner or _default_owner(settings)
    if owner is None:
        return []
    cfg = settings.user_by_name(owner)
    role = store.user_role(owner) or (cfg.role.value if cfg else None)
    lead = _default_owner(settings)
    if role != Role.LEAD.value and lead is not None and lead != owner:
        return [owner, lead]
    return [owner]


def _settled_ops(
    store: Store,
    settings: Settings,
    customer: Customer,
    receivables: list[Receivable],
    now: datetime,
    actor: str,
    channel: str,
) -> list[Op]:
    """A customer with nothing overdue any more: its stages start over for the next time,
    and if its subscriptions are suspended, Reactivate is offered (once per suspension)."""
    today = local_today(now, settings)
    if any(r.customer_id == customer.id and r.is_overdue(today) for r in receivables):
        return []
    state = _state(store, customer.id)
    new = dict(state)
    ops: list[Op] = []
    if state.get("stages"):
        new["stages"] = {}
        new["episode"] = int(state.get("episode", 1)) + 1
        ops.append(audit_op(now, actor, channel, "collections_cleared", customer.id))
    suspension = state.get("suspended") or {}
    if state.get("status") == "suspended" and state.get("reactivate_offered") != suspension.get(
        "op"
    ):
        recipients = _offer_recipients(store, settings, customer)
        for user_id in recipients:
            _key, job = _dm_op(customer.id, REACTIVATE, int(new.get("episode", 1)), user_id, now)
            ops.append(job)
        if recipients:
            new["reactivate_offered"] = suspension.get("op")
            ops.append(
                audit_op(now, actor, channel, "reactivate_offered", customer.id, to=recipients)
            )
    if new == state:
        return ops
    return [_state_op(state, new), *ops]
