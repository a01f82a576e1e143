"""A real all-in-one and the system's headless Chromium, driven by Playwright.

The browser is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it when missing);
Playwright only drives it and never downloads a browser of its own. Without the binary
the tests are skipped, or fail when ``CIRNO_TEST_REQUIRE_SERVICES=1`` (CI).

Every page opened through the ``open_page`` fixture is watched: console errors, uncaught
exceptions and any request to another origin (the console must work offline, so such a
request is blocked and recorded) fail the test at teardown. When a test fails, every
page it opened is saved as a PNG under the test's tmp directory and the paths printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from cirno.harness import ADMIN_TOKEN, Cluster, run_cluster
from tests.services import REQUIRE_ENV, services_required

CHROMIUM = Path(os.environ.get("CIRNO_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})

__all__ = ["ADMIN_TOKEN", "Watched"]


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    name: str
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    """Texts of console errors the test provokes on purpose (e.g. a refused request)."""

    def expect_error(self, text: str) -> None:
        """Accept console errors containing ``text`` (Chromium logs every 4xx fetch)."""
        self.expected.append(text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the item, so fixtures can tell the test failed."""
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``cirno up`` on free ports (the console is the control plane's), once its gateway
    and logic node are in the registry (so ``/v1/route`` has a gateway to answer)."""
    with run_cluster(tmp_path_factory.mktemp("browser-cluster")) as running:
        wait_registered(running, {"gateway", "logic"})
        yield running


def wait_registered(cluster: Cluster, roles: set[str], timeout: float = 20.0) -> None:
    """Poll ``/v1/nodes`` until a node of every role in ``roles`` heartbeat."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    with cluster.admin() as admin:
        while time.monotonic() < deadline:
            seen = {node["role"] for node in admin.get("/v1/nodes").json()["data"]}
            if roles <= seen:
                return
            time.sleep(0.1)
    raise AssertionError(f"only {sorted(seen)} registered within {timeout} s:\n{cluster.log()}")


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (no browser download: it launches the system's Chromium)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if services_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """Chromium on a fresh profile directory; one context for the package's pages (each
    tab still has its own sessionStorage, so each chat page signs in on its own)."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_FLAGS,
        viewport={"width": 1280, "height": 860},
    )
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def open_page(
    browser: BrowserContext, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str, str], Watched]]:
    """``open_page(name, url)``: a new tab at ``url`` whose console errors, page errors
    and off-origin requests fail the test; all of the test's tabs are screenshotted
    when it fails, and closed afterwards."""
    opened: list[Watched] = []

    def open_one(name: str, url: str) -> Watched:
        page = browser.new_page()
        watched = Watched(page, name)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not any(t in message.text for t in watched.expected):
                watched.problems.append(f"console error: {message.text} ({message.location})")

        def on_route(route: Route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith("data:") or host in LOCAL_HOSTS:
                route.continue_()
                return
            watched.problems.append(f"request to another origin: {route.request.url}")
            route.abort()

        page.on("console", on_console)
        page.on("pageerror", lambda exc: watched.problems.append(f"page error: {exc}"))
        page.route("**/*", on_route)
        opened.append(watched)
        page.goto(url)
        return watched

    yield open_one
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    for watched in opened:
        if failed:
            path = tmp_path / f"{request.node.name}-{watched.name}.png"
            try:
                watched.page.screenshot(path=str(path), full_page=True)
                print(f"screenshot of {watched.name}: {path}")
            except Error as exc:
                print(f"no screenshot of {watched.name}: {exc}")
        watched.page.close()
    problems = [f"{w.name}: {p}" for w in opened for p in w.problems]
    assert not problems, "\n".join(problems)
