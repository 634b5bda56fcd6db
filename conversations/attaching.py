"""Files on cases: ``attach BILL-n PATH`` and a file shared while a case is in context.

Every channel hands the desk a :class:`~bot.kernel.model.SharedFile` with the message:
an upload's bytes (the terminal's ``attach``, the web page's file input) or a link to
a file that stays where it was shared (Slack's permalink, Teams' content URL). One
handler, :meth:`Attaching.cmd_attach`, takes them all:

1. **which case**: the case the command names (``attach BILL-7 …``, or a ``BILL-n`` in
   the text the file came with), else the **case in context**: the last case this
   person was shown in this conversation (``status``, a card, any command on a case —
   remembered per channel, conversation and person by :meth:`Attaching.remember_case`).
   No case: the person is asked which one;
2. the policy (:data:`~bot.policy.Action.ATTACH`: a customer only on their own
   tenant's cases), *before* any byte is stored;
3. an upload is checked (:func:`bot.attachments.check_upload`: size, type from the
   content) and its bytes stored (:meth:`~bot.storage.Store.put_file`) before the case
   is saved with the attachment (one commit): a crash between the two leaves bytes
   nobody names, never an attachment without its bytes;
4. a duplicate (the same bytes, Slack file or Teams URL on the same case) is attached once.

Whether the customer sees it: a file a customer shares is theirs; staff share a file
for the customer in a conversation shared with the customer, or by asking for it
(``attach BILL-7 PATH --customer``, the web page's "visible to the customer" box);
every other file staff share is internal.
"""

from __future__ import annotations

import re
from contextlib import suppress

from bot.attachments import check_upload, clean_name, size_text
from bot.domain import Attachment, DomainError, Role, parse_case_id
from bot.faults import fault_point
from bot.i18n import N_, _, ngettext
from bot.kernel.model import Channel, Message, SharedFile
from bot.policy import Action
from bot.storage import StorageError
from conversations.casework import _reply
from conversations.commands import Command
from conversations.desk_commands import DeskCommands
from conversations.registry import command
from conversations.sharing import CustomerConversations
from conversations.text import u
from conversations.turn import Result, Turn

FOR_CUSTOMER = "--customer"
_CASE_WORD = re.compile(r"\bbill-?\d{1,9}\b", re.IGNORECASE)
FAULT_AFTER_BLOB = "attach-after-blob"  # bot.faults: the bytes are stored, the case not yet


def context_key(msg: Message) -> str:
    """Where the case in context of ``msg``'s sender is remembered (a conversation record)."""
    return f"case-context|{msg.channel}|{msg.conversation}|{msg.user}"


def named_case(text: str) -> int | None:
    """The first ``BILL-n`` in a text, or None."""
    found = _CASE_WORD.search(text or "")
    return parse_case_id(found.group(0)) if found else None


class Attaching(DeskCommands):
    """The desk's ``attach`` command and the case in context (methods of the Desk; declared
    after the other commands of the desk, so ``help`` lists it after ``note``)."""

    @command(
        "attach",
        needs="case",
        aliases=("附件", "upload"),
        action=Action.ATTACH,
        usage="attach BILL-n PATH",
        help=N_(
            "attach a file to a case (terminal); on Slack, Teams and the web, share the file "
            "in the case's context"
        ),
        handler_checks=True,
        after="note",
    )
    async def cmd_attach(self, turn: Turn, cmd: Command) -> Result:
        msg = turn.msg
        number, rest = cmd.case_and_rest()
        if number is None:
            # Named in the text, else the case whose card's thread (Slack) or card (Teams)
            # the file was shared in, else the case last shown in this conversation.
            number = (
                named_case(cmd.args)
                or (named_case(msg.thread_case) if msg.thread_case else None)
                or await self.case_in_context(msg)
            )
        if number is None:
            return _reply(
                _(
                    "Which case is the file for? Type `attach BILL-7 PATH` in the terminal, "
                    "choose the case on the web page, or share the file in the case's "
                    "conversation right after `status BILL-7`."
                )
            )
        case = await self.load_case(turn, number, Action.ATTACH, "attach BILL-7 PATH")
        if not msg.files:
            return _reply(
                _(
                    "Send the file with it: `attach {case} PATH` in the terminal, the file "
                    "field on the web page, or share the file in this conversation on Slack "
                    "or Teams."
                ).format(case=case.id)
            )
        for_customer = FOR_CUSTOMER in rest.split() or any(f.for_customer for f in msg.files)
        internal = self._internal(turn, for_customer)
        kinds = []
        for f in msg.files:  # every upload is checked before anything is stored
            kinds.append(
                check_upload(f.name, f.data, self.settings.attachment_max_bytes)
                if f.data is not None
                else None
            )
        added: list[Attachment] = []
        seen: list[Attachment] = []
        for f, kind in zip(msg.files, kinds, strict=True):
            attachment = await self._attachment(turn, f, kind, internal)
            if case.attach(attachment, turn.actor, turn.now):
                added.append(attachment)
            else:
                seen.append(case.attachment(attachment.id) or attachment)
        if not added:
            names = ", ".join(u(a.name) for a in seen)
            return _reply(
                _("{names} is already attached to {case}; nothing changed.").format(
                    names=names, case=case.id
                ),
                kind="stale",
            )
        if any(a.stored for a in added):
            await fault_point(FAULT_AFTER_BLOB)
        text = ngettext(
            "Attached {names} to {case}.", "Attached {n} files to {case}: {names}.", len(added)
        ).format(
            n=len(added),
            names=", ".join(f"{u(a.name)} ({size_text(a.size or 0)})" for a in added),
            case=case.id,
        )
        if internal and turn.actor.role != Role.CUSTOMER:
            text += " " + _("Internal: the customer does not see it.")
        return await self.save_and_show(turn, case, text)

    def _internal(self, turn: Turn, for_customer: bool) -> bool:
        """Staff's files are internal unless shared for the customer (see the module doc)."""
        if turn.actor.role == Role.CUSTOMER or for_customer:
            return False
        msg = turn.msg
        where = (msg.conversation, msg.reference.get("channel_id"), msg.reference.get("channel"))
        shared = CustomerConversations(self.settings.customers).shared(
            msg.channel, where, direct=msg.is_direct
        )
        return not shared

    async def _attachment(
        self, turn: Turn, f: SharedFile, kind: str | None, internal: bool
    ) -> Attachment:
        name = clean_name(f.name)
        by, at, channel = turn.actor.user_id, turn.now, str(turn.msg.channel)
        if f.data is not None:
            assert kind is not None
            file_id = await self.store.put_file(f.data)  # durable before the case names it
            return Attachment(
                file_id, name, len(f.data), kind, by, at, channel, internal, stored=True
            )
        if not (f.source_id and f.link):
            raise DomainError(_("That file came without a link to it; nothing was attached."))
        kind = f.content_type[:100]
        return Attachment(f.source_id, name, f.size, kind, by, at, channel, internal, f.link)

    # ------------------------------------------------------------ the case in context
    async def case_in_context(self, msg: Message) -> int | None:
        """The case last shown to the sender in this conversation, or None."""
        doc = await self.store.get_conversation(context_key(msg))
        number = doc.get("case") if doc else None
        return number if isinstance(number, int) else None

    async def remember_case(self, turn: Turn, result: Result) -> None:
        """After a turn that worked on a case without an error: it is the case in context."""
        number = turn.case_number
        if number is None or any(r.kind == "error" for r in result.replies):
            return
        if turn.msg.channel not in (Channel.SLACK, Channel.TEAMS, Channel.WEB, Channel.LOCAL):
            return
        if await self.case_in_context(turn.msg) == number:
            return
        with suppress(StorageError):  # the answer counts more than the memory of it
            await self.store.save_conversation(context_key(turn.msg), {"case": number})
