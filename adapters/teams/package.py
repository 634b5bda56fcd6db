"""``billing-bot teams-package``: the Teams app package to upload (manifest + two icons, zipped).

The template ``manifest/teams/manifest.json`` has placeholders
``{{MICROSOFT_APP_ID}}``, ``{{VERSION}}``, ``{{DEVELOPER_NAME}}`` and
``{{WEBSITE_URL}}``. The command fills them in, checks the result (a GUID app
id, a x.y.z version, https URLs, icons of 192×192 and 32×32 pixels, nothing
left unfilled) and writes a zip with ``manifest.json``, ``color.png`` and
``outline.png`` at its root, as Teams wants it. No botbuilder import here.

The bot's command menu (``commandLists[].commands``, at most 10) is not in the
template: it is the commands declared with a Teams menu entry
(:mod:`conversations.registry`, ``teams_menu=TeamsMenu(position, description)``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from adapters.teams.icons import png_size
from bot.domain import is_guid
from conversations import desk  # noqa: F401  (importing it declares the desk's commands)
from conversations.registry import REGISTRY, Registry

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "manifest" / "teams"
DEFAULT_OUT = Path("dist/billing-bot-teams.zip")
DEFAULT_WEBSITE = "https://example.com/billing-desk"
ICONS = {"color.png": (192, 192), "outline.png": (32, 32)}

_VERSION = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")
_PLACEHOLDER = re.compile(r"\{\{[A-Z_]+\}\}")


class PackageError(Exception):
    """The package cannot be built; the text says what to change."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", help="the bot's Microsoft App ID (default: MICROSOFT_APP_ID)")
    parser.add_argument("--version", dest="app_version", help="app version x.y.z (default: ours)")
    parser.add_argument("--developer", default="Billing desk", help="developer name shown in Teams")
    parser.add_argument(
        "--website", default=DEFAULT_WEBSITE, help="https URL; /privacy and /terms are appended"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"zip to write ({DEFAULT_OUT})"
    )
    parser.add_argument(
        "--manifest-dir", type=Path, default=TEMPLATE_DIR, help="folder with the template and icons"
    )


def fill(template: str, values: dict[str, str]) -> dict[str, Any]:
    """The manifest with the placeholders replaced (each value JSON-escaped)."""
    text = template
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", json.dumps(value)[1:-1])
    left = sorted(set(_PLACEHOLDER.findall(text)))
    if left:
        raise PackageError(f"the template has placeholders nobody fills: {', '.join(left)}")
    manifest: dict[str, Any] = json.loads(text)
    return manifest


def build_package(
    app_id: str,
    out: Path,
    *,
    version: str,
    developer: str = "Billing desk",
    website: str = DEFAULT_WEBSITE,
    manifest_dir: Path = TEMPLATE_DIR,
    commands: Registry = REGISTRY,
) -> Path:
    """Write the app package zip to ``out`` and return its path.

    The bot's command menu is the Teams menu of ``commands`` (the declared commands).
    """
    if not is_guid(app_id):
        raise PackageError(
            f"the app id must be the bot's Microsoft App ID (a GUID), not {app_id!r}: "
            "pass --app-id or set MICROSOFT_APP_ID"
        )
    if not _VERSION.match(version):
        raise PackageError(f"the version must look like 1.0.0, not {version!r}")
    if not website.startswith("https://"):
        raise PackageError(f"Teams needs an https website URL, not {website!r}")
    if not developer.strip() or len(developer) > 32:
        raise PackageError("the developer name must be 1 to 32 characters")
    template_path = manifest_dir / "manifest.json"
    if not template_path.exists():
        raise PackageError(f"no manifest template at {template_path}")
    manifest = fill(
        template_path.read_text(encoding="utf-8"),
        {
            "MICROSOFT_APP_ID": app_id.lower(),
            "VERSION": version,
            "DEVELOPER_NAME": developer.strip(),
            "WEBSITE_URL": website.rstrip("/"),
        },
    )
    menu = commands.teams_commands()
    if len(menu) > 10:
        raise PackageError(f"Teams shows at most 10 commands in its menu, not {len(menu)}")
    for bot in manifest.get("bots", []):
        for command_list in bot.get("commandLists", []):
            command_list["commands"] = menu
    icons: dict[str, bytes] = {}
    for name, size in ICONS.items():
        path = manifest_dir / name
        if not path.exists():
            raise PackageError(f"the icon {path} is missing (python -m adapters.teams.icons)")
        data = path.read_bytes()
        try:
            got = png_size(data)
        except ValueError as exc:
            raise PackageError(f"{path}: {exc}") from exc
        if got != size:
            raise PackageError(f"{path} must be {size[0]}×{size[1]} pixels, not {got[0]}×{got[1]}")
        icons[name] = data
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for name, data in icons.items():
            zf.writestr(name, data)
    return out


def run(app_id: str | None, args: argparse.Namespace) -> int:
    """The command: build the package, say where it is and what to do with it."""
    from bot import __version__

    try:
        path = build_package(
            args.app_id or app_id or "",
            args.out,
            version=args.app_version or __version__,
            developer=args.developer,
            website=args.website,
            manifest_dir=args.manifest_dir,
        )
    except PackageError as exc:
        print(f"billing-bot: teams-package: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: upload it in Teams (Apps → Manage your apps → Upload an app)")
    if args.website == DEFAULT_WEBSITE:
        print("note: --website is a placeholder; set your own https site before publishing")
    return 0


__all__ = ["PackageError", "add_arguments", "build_package", "fill", "run"]
