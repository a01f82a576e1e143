"""The browser chat client: two accounts in two tabs, over the real gateway.

Tokens are minted through the control plane with the admin token, the gateway comes
from ``/v1/route``, and the pages speak the kim protocol (protobuf over WebSocket):
1:1 and group messages, offline sync on login, and a kickout by a second login.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from cirno.harness import Cluster
from tests.browser.conftest import ADMIN_TOKEN, Watched

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

OpenPage = Callable[[str, str], Watched]
TENANT = "chatco"
SECRET = "chatco-secret-0123456789abcdefgh"
_tabs = itertools.count(1)


@pytest.fixture(scope="module")
def tenant(cluster: Cluster) -> str:
    """A tenant of its own for this module's accounts."""
    cluster.create_tenant(TENANT, SECRET)
    return TENANT


def chat_page(open_page: OpenPage, cluster: Cluster, account: str, device: str = "web") -> Page:
    """A chat tab signed in as ``account`` (offline sync done)."""
    name = f"chat-{account}-{next(_tabs)}"
    page = open_page(name, f"{cluster.control_url}/console/chat").page
    form = page.locator("#signin")
    form.locator("input[name=admin]").fill(ADMIN_TOKEN)
    form.locator("input[name=tenant]").fill(TENANT)
    form.locator("input[name=account]").fill(account)
    form.locator("input[name=device]").fill(device)
    form.locator("button[type=submit]").click()
    expect(page.locator(f"#log li[data-event=signed-in][data-account={account}]")).to_be_attached()
    expect(page.locator("#log li[data-event=synced]")).to_be_attached()
    return page


def send(page: Page, to: str, text: str) -> None:
    """Send ``text`` to ``@account`` or ``#group`` and wait until it is shown as sent."""
    page.locator("#send input[name=to]").fill(to)
    page.locator("#send input[name=text]").fill(text)
    page.locator("#send button[type=submit]").click()
    expect(message(page, text)).to_be_attached()


def message(page: Page, body: str) -> Locator:
    """The log line of the message with this body."""
    return page.locator("#log li[data-kind=message]").filter(has_text=body)


def test_one_to_one_and_group_chat(cluster: Cluster, tenant: str, open_page: OpenPage) -> None:
    alice = chat_page(open_page, cluster, "alice")
    bob = chat_page(open_page, cluster, "bob")

    send(alice, "@bob", "hello bob")
    line = message(bob, "hello bob")
    expect(line).to_have_attribute("data-sender", "alice")
    expect(line).to_have_text(re.compile(r"alice → you: hello bob$"))
    send(bob, "@alice", "hi alice")
    expect(message(alice, "hi alice")).to_have_attribute("data-sender", "bob")

    group = alice.locator("#group")
    group.locator("input[name=name]").fill("team")
    group.locator("input[name=members]").fill("bob")
    group.get_by_role("button", name="Create").click()
    created = alice.locator("#log li[data-event=created]")
    expect(created).to_be_attached()
    group_id = created.get_attribute("data-group")
    assert group_id
    expect(
        bob.locator(f"#log li[data-event=group-created][data-group='{group_id}']")
    ).to_be_attached()

    send(alice, f"#{group_id}", "hello team")
    expect(message(bob, "hello team")).to_have_attribute("data-group", group_id)
    send(bob, f"#{group_id}", "hello from bob")
    expect(message(alice, "hello from bob")).to_have_attribute("data-group", group_id)

    bob.locator("#group input[name=group]").fill(f"#{group_id}")
    bob.get_by_role("button", name="Members").click()
    members = bob.locator(f"#log li[data-event=members][data-group='{group_id}']")
    expect(members).to_contain_text("alice")
    expect(members).to_contain_text("bob")


def test_offline_sync_and_kickout(cluster: Cluster, tenant: str, open_page: OpenPage) -> None:
    carol = chat_page(open_page, cluster, "carol")
    dave = chat_page(open_page, cluster, "dave")
    dave.locator("#signout").click()
    expect(dave.locator("#log li[data-event=closed][data-code='1000']")).to_be_attached()

    send(carol, "@dave", "while you were away")
    back = chat_page(open_page, cluster, "dave")
    synced = message(back, "while you were away")
    expect(synced).to_have_attribute("data-offline", "1")
    expect(synced).to_have_attribute("data-sender", "carol")
    expect(back.locator("#log li[data-event=synced]")).to_have_attribute("data-count", "1")
    expect(back.locator("body")).to_have_attribute(
        "data-acked", synced.get_attribute("data-id") or ""
    )

    # A second login of dave on the same device kicks the first one out.
    again = chat_page(open_page, cluster, "dave")
    expect(back.locator("#log li[data-event=kickout]")).to_be_attached()
    expect(back.locator("#log li[data-event=kicked][data-code='4002']")).to_be_attached()
    expect(back.locator("body")).to_have_attribute("data-connected", "no")
    # The new session got nothing twice: the first one acked what it had synced.
    expect(again.locator("#log li[data-event=synced]")).to_have_attribute("data-count", "0")
    send(carol, "@dave", "are you there")
    expect(message(again, "are you there")).to_have_attribute("data-sender", "carol")


def test_reconnects_after_a_dropped_connection(
    cluster: Cluster, tenant: str, open_page: OpenPage
) -> None:
    erin = chat_page(open_page, cluster, "erin")
    frank = chat_page(open_page, cluster, "frank")
    # Drop frank's WebSocket under the client (as a network failure would).
    frank.evaluate("window.cirnoChat.conn.ws.close(4000, 'dropped by the test')")
    expect(frank.locator("#log li[data-event=closed][data-code='4000']")).to_have_attribute(
        "data-reconnect", "yes"
    )
    expect(frank.locator("#log li[data-event=reconnected]")).to_be_attached()
    send(erin, "@frank", "after the drop")
    expect(message(frank, "after the drop")).to_have_attribute("data-sender", "erin")
    expect(frank.locator("#log li[data-event=signed-in]")).to_have_count(2)
