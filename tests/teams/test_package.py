"""``billing-bot teams-package``: the manifest filled in, zipped with its two icons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adapters.teams.icons import color_icon, outline_icon, png_size
from adapters.teams.package import TEMPLATE_DIR, PackageError, build_package

APP_ID = "C9E8C047-2A74-40A2-B28A-B162D5F5327C"
ROOT = Path(__file__).resolve().parents[2]


def test_the_icons_have_the_sizes_teams_wants() -> None:
    assert png_size((TEMPLATE_DIR / "color.png").read_bytes()) == (192, 192)
    assert png_size((TEMPLATE_DIR / "outline.png").read_bytes()) == (32, 32)
    # The committed icons are the ones the code draws.
    assert (TEMPLATE_DIR / "color.png").read_bytes() == color_icon()
    assert (TEMPLATE_DIR / "outline.png").read_bytes() == outline_icon()


def test_outline_icon_is_white_on_transparent() -> None:
    import zlib

    data = outline_icon()
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    rows = [raw[i * (1 + 32 * 4) + 1 : (i + 1) * (1 + 32 * 4)] for i in range(32)]
    pixels = {bytes(row[j : j + 4]) for row in rows for j in range(0, len(row), 4)}
    assert pixels == {b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"}


def test_package_fills_the_app_id_and_zips_three_files(tmp_path: Path) -> None:
    out = build_package(APP_ID, tmp_path / "app.zip", version="1.2.3", developer="Contoso CSP")
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["id"] == APP_ID.lower()
    assert manifest["bots"][0]["botId"] == APP_ID.lower()
    assert manifest["version"] == "1.2.3"
    assert manifest["developer"]["name"] == "Contoso CSP"
    assert manifest["developer"]["privacyUrl"].startswith("https://")
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    assert "{{" not in json.dumps(manifest)
    for command in manifest["bots"][0]["commandLists"][0]["commands"]:
        assert len(command["title"]) <= 32 and len(command["description"]) <= 128
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["description"]["short"]) <= 80


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_id": "not-a-guid"}, "GUID"),
        ({"version": "1.0"}, "1.0.0"),
        ({"website": "http://example.com"}, "https"),
        ({"developer": '"quoted" name'}, None),
    ],
)
def test_package_checks_its_inputs(
    tmp_path: Path, kwargs: dict[str, str], message: str | None
) -> None:
    args = {"app_id": APP_ID, "version": "1.0.0", **kwargs}
    app_id = args.pop("app_id")
    if message is None:  # odd characters are escaped, the manifest stays valid JSON
        out = build_package(app_id, tmp_path / "ok.zip", **args)
        with zipfile.ZipFile(out) as zf:
            assert json.loads(zf.read("manifest.json"))["developer"]["name"] == '"quoted" name'
        return
    with pytest.raises(PackageError, match=message):
        build_package(app_id, tmp_path / "x.zip", **args)


def test_package_refuses_wrong_icons(tmp_path: Path) -> None:
    folder = tmp_path / "manifest"
    folder.mkdir()
    (folder / "manifest.json").write_text((TEMPLATE_DIR / "manifest.json").read_text())
    (folder / "color.png").write_bytes(outline_icon())  # 32×32 where 192×192 belongs
    (folder / "outline.png").write_bytes(outline_icon())
    with pytest.raises(PackageError, match="192×192"):
        build_package(APP_ID, tmp_path / "x.zip", version="1.0.0", manifest_dir=folder)


def test_the_command_uses_microsoft_app_id(tmp_path: Path) -> None:
    out = tmp_path / "teams.zip"
    env = {**os.environ, "MICROSOFT_APP_ID": APP_ID, "BOT_CONFIG": ""}
    run = subprocess.run(
        [sys.executable, "-m", "bot", "teams-package", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert str(out) in run.stdout
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("manifest.json"))["id"] == APP_ID.lower()
    env.pop("MICROSOFT_APP_ID")
    run = subprocess.run(
        [sys.executable, "-m", "bot", "teams-package", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "MICROSOFT_APP_ID" in run.stderr
