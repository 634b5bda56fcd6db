"""Collections: receivables, the daily collections policy, and suspend / reactivate.

Registered by the composition root (``register(runtime, partner_center)``, with
the Partner Center client every flow shares):

* commands ``overdue``, ``paid INVOICE [amount]``, ``suspend CUSTOMER``,
  ``reactivate CUSTOMER`` and ``collections`` (the policy; "I sent it" clicks);
* job types ``collections_run`` (the daily run at ``[collections] run_at`` in
  the desk's time zone) and ``collections_dm`` (one DM to a customer's owner,
  delivered in the owner's working hours, with buttons and a drafted text for
  the customer).

Storage: ``receivables`` (one document per invoice), ``collections``
(``customer:<id>``: the stages already fired and the subscription status;
``op:<id>``: a suspend/reactivate operation, whose state is written *before*
any Partner Center call, so a double click or a retry never PATCHes twice) and
the append-only ``audit`` table for imports, policy runs, payments and every
step of a suspension.

Suspending and reactivating need the ``lead`` role and an explicit
confirmation naming the customer, the subscriptions and the amount overdue.
Without Partner Center credentials (or without the customer's tenant id) the
bot works in manual mode: it says exactly what to do in the Partner Center
portal and records it when the lead presses *Done in Partner Center*.

The package, one part a file:

* ``state.py``: what the flow stores (the tables, a customer's collections
  state, the audit trail, the DM jobs) and what settling a customer writes;
* ``csv_import.py``: the receivables CSV import and its report;
* ``letters.py``: each stage's label and the customer-facing text of each stage;
* ``base.py``: what every part reads (the runtime, who owes what, users);
* ``overdue.py``: the ``overdue`` and ``paid`` commands;
* ``suspension.py``: suspend / reactivate, the confirmed idempotent operation;
* ``daily.py``: the daily run, the owner's DM and the ``collections`` command;
* this file: :class:`Collections` (the parts put together), ``register`` and
  ``flow_of``, and the names other modules import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.partner_center import PartnerCenterClient
from conversations.collections.csv_import import ImportReport, import_receivables
from conversations.collections.letters import draft_text
from conversations.collections.state import DM_TYPE, RUN_TYPE, audit_log, local_today

# The parts that declare commands (at import), in the registry's order: overdue, paid,
# suspend, reactivate, collections.
# isort: off
from conversations.collections.overdue import OverdueCommands
from conversations.collections.suspension import Suspensions
from conversations.collections.daily import DailyRun

# isort: on

if TYPE_CHECKING:
    from conversations.runtime import Runtime


def register(runtime: Runtime, partner_center: PartnerCenterClient) -> None:
    """Add the collections commands and job types to ``runtime`` (the composition root calls it)."""
    runtime.add_flow(Collections(runtime, partner_center))


def flow_of(runtime: Runtime) -> Collections:
    """The collections flow registered on ``runtime`` (the CLI route and tests use it)."""
    return runtime.flow(Collections)


# ---- the flow ----------------------------------------------------------------------------
# The parts in reverse: the desk takes their commands base class first (overdue, paid,
# suspend, reactivate, collections), as when they were one class.
class Collections(DailyRun, Suspensions, OverdueCommands):
    """The collections commands and jobs of one runtime."""

    def __init__(self, runtime: Runtime, client: PartnerCenterClient) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.settings = runtime.settings
        self.policy = runtime.settings.collections
        self.client = client  # handed over by the composition root (shared by the flows)
        desk = runtime.desk
        desk.add_commands(self)
        runtime.scheduler.add_job_type(RUN_TYPE, self.run_job)
        runtime.scheduler.add_job_type(DM_TYPE, self.dm_job)

    async def import_csv(self, text: str, *, actor: str, channel: str, file: str) -> ImportReport:
        """Import a receivables file into this runtime's store (``POST /local/receivables``)."""
        report = await import_receivables(
            self.store,
            self.settings,
            text,
            actor=actor,
            channel=channel,
            file=file,
            now=self.runtime.clock.now(),
        )
        self.runtime.kick()
        return report


__all__ = [
    "DM_TYPE",
    "Collections",
    "ImportReport",
    "audit_log",
    "draft_text",
    "flow_of",
    "import_receivables",
    "local_today",
    "register",
]
