"""The command registry: one declaration per command, next to its handler.

A command is declared once, with :func:`command` on the method that handles it
(a :class:`~conversations.desk.Desk` method or a flow module's)::

    @command(
        "take",
        aliases=("接手",),
        action=Action.TAKE,
        usage="take BILL-n",
        help=N_("the case becomes yours"),
        handler_checks=True,
        teams_menu=TeamsMenu(6, "Take a case: take BILL-7"),
    )
    async def cmd_take(self, turn: Turn, cmd: Command) -> Result: ...

Everything else is derived from the declarations: the parser's aliases
(:func:`conversations.commands.parse`), the desk's dispatch and its
authorization check, ``help`` (the roles that see a command are the roles the
policy's matrix allows its action), the action of each case-card button and the
Teams manifest's command menu. The declarations are made when a module is
imported, into :data:`REGISTRY` (like a flow's tables); a test makes a fresh
registry with :meth:`Registry.copy`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.domain import Role
from bot.policy import MATRIX, Action

# Teams shows at most 10 commands in a bot's command menu, with these lengths.
TEAMS_MENU_MAX = 10
TEAMS_TITLE_MAX = 32
TEAMS_DESCRIPTION_MAX = 128

_MARK = "__billing_command__"
_WORD = re.compile(r"(?<![\w-])[a-z0-9][a-z0-9_-]*")  # a lower-case word of a usage

F = TypeVar("F", bound=Callable[..., object])


class RegistryError(Exception):
    """Two declarations clash (a name, an alias, a Teams menu position), or one is unknown."""


@dataclass(frozen=True, slots=True)
class TeamsMenu:
    """A command in the Teams manifest's command menu: its place (1–10) and description."""

    position: int
    description: str  # English: the manifest has no translations


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Everything about one command but its handler.

    ``action`` is what the policy must allow. The dispatcher checks it before the
    handler runs, unless ``handler_checks``: then the handler checks it itself — on the
    case it loads (the customer-tenant and owner rules need the case) or with an
    audit of the refusal. ``help`` (an ``N_()`` text) is the line of ``help``;
    ``None`` leaves the command out of it (a command for buttons). ``form`` is the
    form the command opens (when its arguments are missing); ``after`` places the
    command in ``help`` after another one (a flow's command next to its kin); ``needs``
    is what it needs to run as typed (``"case"``: a case id, ``"word"``: any argument),
    so that a full command line typed into an open form is recognised as one.
    ``words`` are the argument words the command understands (a list filter, a
    language, a dispute's outcome…), each with the words that mean the same (the
    Chinese ones): ``(("all", ("全部", "所有")), …)``; the handler reads a typed
    argument word with :meth:`word` (``Command.word``), so ``列表 全部`` is ``list all``.
    """

    name: str
    action: Action
    usage: str
    help: str | None
    aliases: tuple[str, ...] = ()
    form: str | None = None
    handler_checks: bool = False
    teams_menu: TeamsMenu | None = None
    after: str | None = None
    needs: str | None = None  # what it needs to run as typed: "case" (a BILL-n), "word", None
    words: tuple[tuple[str, tuple[str, ...]], ...] = ()  # argument words and their aliases

    def word(self, typed: str) -> str:
        """The argument word ``typed`` means (``全部`` → ``all``); else ``typed`` lower-cased."""
        low = typed.lower()
        for word, aliases in self.words:
            if low == word or low in aliases:
                return word
        return low

    def native_alias(self) -> str | None:
        """The first alias in another script than English (the Chinese word), if any."""
        return next((a for a in self.aliases if not a.isascii()), None)

    def native_usage(self) -> str | None:
        """``usage`` in the native aliases' words (``列表 [我的|…|全部] [客户 NAME]``).

        Upper-case placeholders (``BILL-n``, ``NAME``) stay; None without a native alias.
        """
        alias = self.native_alias()
        if alias is None:
            return None
        native = {w: next((a for a in al if not a.isascii()), w) for w, al in self.words}
        head, _sep, rest = self.usage.partition(" ")
        rest = _WORD.sub(lambda m: native.get(m.group(0), m.group(0)), rest)
        return f"{alias} {rest}".strip()

    def roles(self) -> tuple[Role, ...]:
        """The roles the policy allows this command (in the order of :class:`Role`)."""
        return tuple(role for role in Role if self.action in MATRIX[role])


class Registry:
    """The declared commands, in ``help`` order, with their aliases."""

    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}

    def copy(self) -> Registry:
        """A registry with the same declarations (a test adds to it without side effects)."""
        other = Registry()
        other._specs = dict(self._specs)
        return other

    # ---- declaring -------------------------------------------------------------------
    def add(self, spec: CommandSpec) -> CommandSpec:
        """Declare ``spec``; the same declaration again (a module imported twice) is a no-op."""
        known = self._specs.get(spec.name)
        if known is not None:
            if known == spec:
                return spec
            raise RegistryError(f"the command {spec.name!r} is declared twice, differently")
        words = self.aliases()
        for word in (spec.name, *spec.aliases):
            if word != word.lower() or not word or " " in word:
                raise RegistryError(f"{word!r}: commands and aliases are one lower-case word")
            if word in words or (word != spec.name and word in self._specs):
                raise RegistryError(f"{word!r} of {spec.name!r} is already a command or alias")
        seen: set[str] = set()
        for word, aliases in spec.words:
            for typed in (word, *aliases):
                if typed != typed.lower() or not typed or " " in typed or typed in seen:
                    raise RegistryError(
                        f"{typed!r} of {spec.name!r}: argument words are distinct lower-case words"
                    )
                seen.add(typed)
        if spec.teams_menu is not None:
            self._check_menu(spec)
        if spec.after is not None and spec.after in self._specs:
            items = list(self._specs.items())
            at = [name for name, _spec in items].index(spec.after) + 1
            items.insert(at, (spec.name, spec))
            self._specs = dict(items)
        else:
            self._specs[spec.name] = spec
        return spec

    def remove(self, name: str) -> None:
        """Forget a declaration (tests)."""
        self._specs.pop(name, None)

    def _check_menu(self, spec: CommandSpec) -> None:
        menu = spec.teams_menu
        assert menu is not None
        taken = {s.teams_menu.position: s.name for s in self.menu() if s.teams_menu}
        if len(taken) >= TEAMS_MENU_MAX:
            raise RegistryError(
                f"{spec.name!r}: the Teams command menu holds at most {TEAMS_MENU_MAX} commands"
            )
        if not 1 <= menu.position <= TEAMS_MENU_MAX or menu.position in taken:
            raise RegistryError(
                f"{spec.name!r}: Teams menu position {menu.position} is not free (1–10; "
                f"taken: {sorted(taken)})"
            )
        if (
            len(spec.name) > TEAMS_TITLE_MAX
            or not 0 < len(menu.description) <= TEAMS_DESCRIPTION_MAX
        ):
            raise RegistryError(f"{spec.name!r}: too long for the Teams command menu")

    # ---- reading -----------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> CommandSpec | None:
        return self._specs.get(name)

    def spec(self, name: str) -> CommandSpec:
        """The declaration of ``name``; :class:`RegistryError` if nothing declares it."""
        found = self._specs.get(name)
        if found is None:
            raise RegistryError(f"no command {name!r} is declared (see conversations/registry.py)")
        return found

    def names(self) -> list[str]:
        return list(self._specs)

    def aliases(self) -> dict[str, str]:
        """Every alias → its command."""
        return {alias: s.name for s in self._specs.values() for alias in s.aliases}

    def resolve(self, word: str) -> str:
        """The command a typed word means: an alias's command, else the word itself."""
        if word in self._specs:
            return word
        return self.aliases().get(word, word)

    def listed(self, role: Role) -> list[CommandSpec]:
        """The commands ``help`` shows ``role``: those with help whose action it may do."""
        return [s for s in self._specs.values() if s.help and s.action in MATRIX[role]]

    def closest(
        self, typed: str, role: Role, available: Container[str] | None = None
    ) -> tuple[str, str] | None:
        """The command word (a name or an alias) ``typed`` was probably meant to be.

        Only the commands ``help`` shows ``role`` (and ``available`` ones) count. A
        word glued to a Chinese command word is split off (``列表全部`` → ``("列表",
        "全部")``); else the closest word by :mod:`difflib` (``stauts`` → ``status``),
        with the rest ``""``. None when nothing is close.
        """
        specs = [s for s in self.listed(role) if available is None or s.name in available]
        words = [w for s in specs for w in (s.name, *s.aliases)]
        glued = [w for w in words if not w.isascii() and typed.startswith(w) and typed != w]
        if glued:
            word = max(glued, key=len)
            return word, typed[len(word) :]
        cutoff = 0.6 if typed.isascii() else 0.5  # a Chinese command word is two characters
        close = difflib.get_close_matches(typed, words, n=1, cutoff=cutoff)
        return (close[0], "") if close else None

    def menu(self) -> list[CommandSpec]:
        """The Teams menu's commands, by position."""
        marked = [s for s in self._specs.values() if s.teams_menu is not None]
        return sorted(marked, key=lambda s: s.teams_menu.position if s.teams_menu else 0)

    def teams_commands(self) -> list[dict[str, str]]:
        """The manifest's ``commandLists[].commands``: title and description of each."""
        return [
            {"title": s.name, "description": s.teams_menu.description}
            for s in self.menu()
            if s.teams_menu is not None
        ]


# The application's commands: each module declares its own when it is imported.
REGISTRY = Registry()


def command(
    name: str,
    *,
    action: Action,
    usage: str,
    help: str | None,
    aliases: tuple[str, ...] = (),
    form: str | None = None,
    handler_checks: bool = False,
    teams_menu: TeamsMenu | None = None,
    after: str | None = None,
    needs: str | None = None,
    words: Mapping[str, tuple[str, ...]] | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Declare the command the decorated method handles (see the module docstring).

    ``words``: the argument words and what else means them, ``{"all": ("全部",)}``.
    """
    spec = (registry if registry is not None else REGISTRY).add(
        CommandSpec(
            name,
            action,
            usage,
            help,
            aliases,
            form,
            handler_checks,
            teams_menu,
            after,
            needs,
            tuple((word, tuple(same)) for word, same in (words or {}).items()),
        )
    )

    def mark(fn: F) -> F:
        setattr(fn, _MARK, spec)
        return fn

    return mark


def declared(owner: object) -> list[tuple[CommandSpec, Callable[..., object]]]:
    """The commands ``owner``'s methods declare, bound to ``owner``, in definition order."""
    found: dict[str, tuple[CommandSpec, Callable[..., object]]] = {}
    for klass in reversed(type(owner).__mro__):
        for attr, value in vars(klass).items():
            spec = getattr(value, _MARK, None)
            if isinstance(spec, CommandSpec):
                found[spec.name] = (spec, getattr(owner, attr))
    return list(found.values())


__all__ = [
    "REGISTRY",
    "CommandSpec",
    "Registry",
    "RegistryError",
    "TeamsMenu",
    "command",
    "declared",
]
