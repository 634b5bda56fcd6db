"""``billing-bot chat``: a terminal conversation with the desk.

Typed lines are commands; a number clicks the matching button of the last
answer. Commands can be piped on stdin, one per line, so sessions can be
scripted. When a ``serve`` owns the store, the chat talks to it over
loopback; otherwise it opens the store itself.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from adapters.local.render import render_replies
from bot.i18n import _, use_locale
from bot.kernel.model import Button, Channel, Message, Reply
from bot.kernel.serialize import MAX_FILE_BYTES, reply_from_dict
from conversations.attaching import FOR_CUSTOMER
from conversations.commands import parse

Send = Callable[[dict[str, Any]], Awaitable[list[Reply]]]

QUIT = {"quit", "exit", ":q"}


class ServerGone(Exception):
    """The ``serve`` the chat talks to stopped; ``saved`` says whether the last line was.

    ``False``: it never reached the server (nothing was saved); ``None``: the
    server went away while answering, so it may or may not have been saved.
    """

    def __init__(self, url: str, saved: bool | None) -> None:
        super().__init__(url)
        self.url = url
        self.saved = saved


class ChatSession:
    """One person's terminal session: turns lines into messages, remembers the numbered buttons."""

    def __init__(self, send: Send, user: str, locale: str | None = None) -> None:
        self.send = send
        self.user = user
        self.locale = locale
        self.buttons: list[Button] = []

    def _payload(self, line: str) -> dict[str, Any]:
        text = line.strip()
        payload: dict[str, Any] = {"user": self.user, "conversation": f"terminal:{self.user}"}
        if self.locale:
            payload["locale"] = self.locale
        if self._is_choice(text) and 1 <= int(text) <= len(self.buttons):
            payload["action"] = self.buttons[int(text) - 1].action.to_dict()
        else:
            payload["text"] = text
        return payload

    def _with_file(self, payload: dict[str, Any]) -> dict[str, Any] | str:
        """``attach BILL-n PATH``: the file read here and sent along (base64); or why not."""
        cmd = parse(str(payload.get("text", "")))
        if cmd.name != "attach":
            return payload
        number, rest = cmd.case_and_rest()
        words = rest.split()
        path_text = " ".join(w for w in words if w != FOR_CUSTOMER).strip().strip("'\"")
        if number is None or not path_text:
            return payload  # the desk says what is missing
        path = Path(path_text).expanduser()
        with use_locale(self.locale):
            try:
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    return _("{path} is too large to attach.").format(path=path_text)
                data = path.read_bytes()
            except OSError as exc:
                return _("I cannot read {path}: {reason}").format(
                    path=path_text, reason=exc.strerror or exc
                )
        file: dict[str, Any] = {"name": path.name, "data": base64.b64encode(data).decode("ascii")}
        if FOR_CUSTOMER in words:
            file["for_customer"] = True
        text = f"{cmd.name} BILL-{number}" + (f" {FOR_CUSTOMER}" if FOR_CUSTOMER in words else "")
        return {**payload, "text": text, "files": [file]}

    async def line(self, line: str) -> str:
        typed = line.strip()
        if self._is_choice(typed) and int(typed) > len(self.buttons) and self.buttons:
            with use_locale(self.locale):
                return _("There is no choice {typed} here: pick 1 to {n}.").format(
                    typed=typed, n=len(self.buttons)
                )
        payload = self._with_file(self._payload(line))
        if isinstance(payload, str):
            return payload
        replies = await self.send(payload)
        text, self.buttons = render_replies(replies)
        return text

    @staticmethod
    def _is_choice(typed: str) -> bool:
        """A one- or two-digit number picks a button; longer numbers are text (request ids)."""
        return typed.isdigit() and len(typed) <= 2


def http_sender(session: aiohttp.ClientSession, base_url: str) -> Send:
    async def send(payload: dict[str, Any]) -> list[Reply]:
        try:
            async with session.post(f"{base_url}/local/messages", json=payload) as resp:
                body = await resp.json()
        except aiohttp.ClientConnectorError:
            raise ServerGone(base_url, saved=False) from None  # nothing reached it
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise ServerGone(base_url, saved=None) from None  # it went away mid-answer
        if resp.status >= 400:
            return [Reply(text=str(body.get("error", f"HTTP {resp.status}")), kind="error")]
        return [reply_from_dict(r) for r in body["replies"]]

    return send


async def run_terminal(session: ChatSession, stdin: TextIO, stdout: TextIO, intro: str) -> bool:
    """Read lines until EOF or ``quit``; print each answer. False when the server stopped."""
    interactive = stdin.isatty()
    if intro:
        print(intro, file=stdout, flush=True)
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.strip().lower() in QUIT:
            break
        if not interactive:
            print(f"> {line}", file=stdout)
        try:
            answer = await session.line(line)
        except ServerGone as gone:
            print(server_gone_text(gone, line, session.locale), file=stdout, flush=True)
            return False
        print(answer, file=stdout, flush=True)
        print(file=stdout, flush=True)
    return True


def server_gone_text(gone: ServerGone, line: str, locale: str | None) -> str:
    """What to tell the person whose server stopped: and whether their last line was saved."""
    with use_locale(locale):
        if gone.saved is False:
            return _(
                "The billing-bot server at {url} has stopped, so your last line “{line}” was "
                "not saved. Start it again (make run) and type it again."
            ).format(url=gone.url, line=line)
        return _(
            "The billing-bot server at {url} stopped while answering, so your last line "
            "“{line}” may or may not have been saved: once it runs again, check with status "
            "or list mine before you type it again."
        ).format(url=gone.url, line=line)


def message_for(payload: dict[str, Any]) -> Message:
    from bot.kernel.serialize import message_from_dict

    return message_from_dict(payload, Channel.LOCAL)


__all__ = ["ChatSession", "http_sender", "run_terminal", "message_for", "sys"]
