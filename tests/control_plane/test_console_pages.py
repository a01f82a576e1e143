"""The console's pages, assets and the offline docs, as an installed package serves them."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from fastapi.testclient import TestClient

from control_plane.console.pages import REDOC_LOGO_URL, STATIC_DIR, offline_redoc

ROOT = Path(__file__).resolve().parents[2]
LINKS = re.compile(r'(?:src|href)="([^"]+)"')


def test_every_static_file_is_package_data() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["control_plane.console"]
    files = [p.relative_to(STATIC_DIR.parent).as_posix() for p in STATIC_DIR.rglob("*")]
    shipped = [f for f in files if (STATIC_DIR.parent / f).is_file()]
    missing = [f for f in shipped if not any(fnmatch(f, g) for g in globs)]
    assert shipped and not missing


def test_pages_link_only_to_local_files(client: TestClient) -> None:
    for path in ("/console", "/console/chat", "/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        links = LINKS.findall(page.text)
        assert links, path
        for link in links:
            assert link.startswith(("/", "data:", "#")), (path, link)
            if link.startswith("/"):
                assert client.get(link).status_code == 200, (path, link)


def test_console_modules_import_only_local_modules(client: TestClient) -> None:
    for script in (STATIC_DIR / "js").glob("*.js"):
        for target in re.findall(r'from "([^"]+)"', script.read_text()):
            assert target.startswith("./"), (script.name, target)
            served = client.get(f"/console/assets/js/{target[2:]}")
            assert served.status_code == 200, (script.name, target)
            assert "javascript" in served.headers["content-type"]


def test_redoc_bundle_has_no_online_resource(client: TestClient) -> None:
    bundle = client.get("/console/vendor/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.content == offline_redoc()
    assert REDOC_LOGO_URL.encode() not in bundle.content
    assert len(bundle.content) > 500_000  # the real bundle, not an empty stand-in
