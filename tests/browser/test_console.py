"""The operators' console in a real browser against a real all-in-one.

Sign-in, a tenant created from the form, the running nodes, a grayscale rule and the
route preview (answered by the control plane's routing code), the route-lookup tester,
the live charts, and the offline API docs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from cirno.harness import Cluster
from tests.browser.conftest import ADMIN_TOKEN, Watched

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

OpenPage = Callable[[str, str], Watched]


def sign_in(page: Page, token: str = ADMIN_TOKEN) -> None:
    """Sign in on the console's form and wait for the navigation."""
    page.fill("#signin input[name=token]", token)
    page.click("#signin button[type=submit]")


def test_sign_in_refuses_a_wrong_token_then_shows_the_nodes(
    cluster: Cluster, open_page: OpenPage
) -> None:
    watched = open_page("console", f"{cluster.control_url}/console")
    watched.expect_error("status of 403 (Forbidden)")  # the wrong token, on purpose
    page = watched.page
    expect(page.locator("#signin-page")).to_be_visible()
    sign_in(page, "not-the-admin-token")
    expect(page.locator("#signin-error")).to_have_text("That is not the admin token.")
    sign_in(page)
    expect(page.locator("#nav")).to_be_visible()
    page.click("#nav a[data-page=nodes]")
    gateway = page.locator("#node-rows tr[data-node=gw-1]")
    logic = page.locator("#node-rows tr[data-node=logic-1]")
    expect(gateway).to_contain_text("gateway")
    expect(gateway).to_contain_text(cluster.ws_url.rstrip("/"))
    expect(gateway.locator(".badge")).to_have_text("healthy")
    expect(logic).to_contain_text(re.compile(r"logic #\d+"))
    expect(logic.locator(".badge")).to_have_text("healthy")
    # The token survives a reload of the tab (sessionStorage), not a sign-out.
    page.reload()
    expect(page.locator("#nav")).to_be_visible()
    page.click("#signout")
    expect(page.locator("#signin-page")).to_be_visible()


def test_create_disable_and_limit_a_tenant(cluster: Cluster, open_page: OpenPage) -> None:
    page = open_page("console", f"{cluster.control_url}/console#tenants").page
    sign_in(page)
    form = page.locator("#tenant-create")
    form.locator("input[name=id]").fill("initech")
    form.locator("input[name=name]").fill("Initech")
    form.locator("button[type=submit]").click()
    expect(page.locator("#tenant-notice")).to_contain_text("Created tenant initech")
    expect(page.locator("#tenant-notice")).to_contain_text("API key")
    row = page.locator("#tenant-rows tr[data-tenant=initech]")
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Disable").click()
    expect(row.locator(".badge")).to_have_text("disabled")
    row.get_by_role("button", name="Enable").click()
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_label("max connections").fill("25")
    row.get_by_role("button", name="Save quotas").click()
    expect(page.locator("#tenant-notice")).to_contain_text("initech updated")
    row.get_by_role("button", name="Rotate key").click()
    expect(page.locator("#tenant-notice")).to_contain_text("New signing key k2 of initech")
    row.get_by_role("button", name="New API key").click()
    expect(page.locator("#tenant-notice")).to_contain_text("New API key of initech")
    dedicated = f"sqlite:///{cluster.data_dir}/initech.db"
    row.get_by_label("dedicated database URL").fill(dedicated)
    row.get_by_role("button", name="Dedicate").click()
    expect(row).to_contain_text(f"dedicated: {dedicated}")
    with cluster.admin() as admin:
        tenant = admin.get("/v1/tenants/initech").json()
        kids = [key["kid"] for key in admin.get("/v1/tenants/initech/secrets").json()["data"]]
    assert (tenant["max_connections"], tenant["status"]) == (25, "active")
    assert (tenant["isolation"], tenant["database_url"]) == ("dedicated", dedicated)
    assert sorted(kids) == ["k1", "k2"]


def test_grayscale_rule_and_preview(cluster: Cluster, open_page: OpenPage) -> None:
    cluster.create_tenant("umbrella", "umbrella-secret-0123456789abcdef")
    page = open_page("console", f"{cluster.control_url}/console#routing").page
    sign_in(page)
    rule = page.locator("#rule-create")
    rule.locator("input[name=id]").fill("canary-alice")
    rule.locator("input[name=priority]").fill("5")
    rule.locator("input[name=tenant]").fill("umbrella")
    rule.locator("input[name=accounts]").fill("alice")
    rule.locator("input[name=gateway_pool]").fill("canary")
    rule.locator("input[name=logic_zone]").fill("zone-b")
    rule.locator("button[type=submit]").click()
    expect(page.locator("#rule-rows tr[data-rule=canary-alice]")).to_contain_text("pool canary")

    preview = page.locator("#preview")
    preview.locator("input[name=tenant]").fill("umbrella")
    preview.locator("input[name=account]").fill("alice")
    preview.locator("input[name=platform]").fill("web")
    preview.locator("input[name=ip]").fill("203.0.113.7")
    preview.locator("button[type=submit]").click()
    result = page.locator("#preview-result")
    # The rule picks the canary pool; no gateway serves it, so the stable one is the
    # fallback, exactly as /v1/route would answer.
    expect(result).to_contain_text("pool rule canary-alice")
    expect(result).to_contain_text("logic zone zone-b")
    expect(result).to_contain_text("(fallback)")
    expect(result).to_contain_text("gw-1")

    preview.locator("input[name=account]").fill("bob")
    preview.locator("button[type=submit]").click()
    expect(result).to_contain_text("pool rule none")
    expect(result).not_to_contain_text("(fallback)")

    lookup = page.locator("#lookup")
    lookup.locator("input[name=tenant]").fill("umbrella")
    lookup.locator("input[name=account]").fill("alice")
    lookup.locator("input[name=ip]").fill("203.0.113.7")
    lookup.locator("button[type=submit]").click()
    answer = page.locator("#lookup-result")
    expect(answer).to_contain_text('"geo": "admin"')
    expect(answer).to_contain_text('"fallback": true')
    expect(answer).to_contain_text(cluster.ws_url)


def test_live_charts_scrape_both_processes(cluster: Cluster, open_page: OpenPage) -> None:
    page = open_page("console", f"{cluster.control_url}/console#overview").page
    sign_in(page)
    sources = page.locator("#metric-sources")
    for url in cluster.metrics_urls.values():
        expect(sources).to_contain_text(f"{url}: up")
    # Two scrapes make the first point; every chart then shows a number.
    for chart in ("messages_per_s", "connections", "logins_per_s"):
        expect(page.locator(f"[data-chart-value={chart}]")).to_have_text(re.compile(r"^\d"))
    expect(page.locator("[data-chart=connections] svg polyline").first).to_be_attached()


def test_docs_and_redoc_work_offline(cluster: Cluster, open_page: OpenPage) -> None:
    swagger = open_page("docs", f"{cluster.control_url}/docs").page
    expect(swagger.locator(".swagger-ui .info .title")).to_contain_text("cirno-im control plane")
    expect(swagger.locator("#operations-console-console-route-preview")).to_be_attached()
    redoc = open_page("redoc", f"{cluster.control_url}/redoc").page
    expect(redoc.get_by_text("Preview where an account is routed").first).to_be_attached()
