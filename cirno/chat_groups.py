"""The group-administration commands of ``cirno chat`` (``cirno_sdk.Groups``).

::

    /invite <group> <account>            add a member (owner or admin)
    /info <group>                        owner, join policy, announcement, admins, mutes
    /dismiss <group>                     delete the group (owner)
    /transfer <group> <account>          make a member the owner (owner)
    /update <group> name <text>          rename (owner or admin)
    /update <group> announcement <text>  set the announcement (owner or admin)
    /policy <group> invite|open|approval who may join (owner or admin)
    /admin <group> <account> [off]       appoint (or dismiss) an admin (owner)
    /mute <group> [account]              mute a member, or the whole group (owner, admin)
    /unmute <group> [account]            undo it
    /apply <group> [message]             ask to join (joins an open group at once)
    /applications <group>                the pending applications (owner or admin)
    /approve <group> <account>           accept an application;  /refuse: refuse it
"""

from __future__ import annotations

from typing import TextIO

from cirno_sdk import Client, GroupInfo, JoinPolicy

GROUP_HELP = (
    "/invite <group> <account> | /info <group> | /dismiss <group> | "
    "/transfer <group> <account> | /update <group> name|announcement <text> | "
    "/policy <group> invite|open|approval | /admin <group> <account> [off] | "
    "/mute <group> [account] | /unmute <group> [account] | /apply <group> [message] | "
    "/applications <group> | /approve <group> <account> | /refuse <group> <account>"
)
GROUP_COMMANDS = frozenset(
    {
        "/invite",
        "/info",
        "/dismiss",
        "/transfer",
        "/update",
        "/policy",
        "/admin",
        "/mute",
        "/unmute",
        "/apply",
        "/applications",
        "/approve",
        "/refuse",
    }
)


async def group_command(client: Client, head: str, rest: str, out: TextIO) -> None:
    """Run one of :data:`GROUP_COMMANDS`; a malformed one prints its usage."""
    words = rest.split()
    if not words:
        _say(out, f"usage: {_usage(head)}")
        return
    group_id, args = words[0].lstrip("#"), words[1:]
    text = rest.split(None, 1)[1] if len(words) > 1 else ""
    groups = client.groups
    if head == "/info":
        _say(out, describe(await groups.detail(group_id)))
    elif head == "/dismiss":
        await groups.dismiss(group_id)
        _say(out, f"dismissed #{group_id}")
    elif head in ("/invite", "/transfer", "/approve", "/refuse") and len(args) == 1:
        account = args[0]
        if head == "/invite":
            await groups.join(group_id, account)
        elif head == "/transfer":
            await groups.transfer(group_id, account)
        else:
            await groups.approve(group_id, account, accept=head == "/approve")
        _say(out, f"{head[1:]} {account} in #{group_id}: done")
    elif head == "/update" and args and args[0] in ("name", "announcement"):
        value = text.split(None, 1)[1] if len(args) > 1 else ""
        if args[0] == "name":
            await groups.update(group_id, name=value)
        else:
            await groups.update(group_id, announcement=value)
        _say(out, f"#{group_id} {args[0]} updated")
    elif head == "/policy" and args and args[0] in set(JoinPolicy):
        await groups.update(group_id, policy=JoinPolicy(args[0]))
        _say(out, f"#{group_id} is now {args[0]}")
    elif head == "/admin" and 1 <= len(args) <= 2:
        admin = args[1:] != ["off"]
        await groups.set_admin(group_id, args[0], admin)
        _say(out, f"{args[0]} is {'an admin' if admin else 'no longer an admin'} of #{group_id}")
    elif head in ("/mute", "/unmute") and len(args) <= 1:
        account = args[0] if args else ""
        await groups.mute(group_id, account, muted=head == "/mute")
        _say(out, f"{head[1:]}d {account or 'the whole group'} in #{group_id}")
    elif head == "/apply":
        joined = await groups.apply(group_id, text)
        _say(out, f"joined #{group_id}" if joined else f"applied to #{group_id}: waiting")
    elif head == "/applications":
        pending = await groups.applications(group_id)
        lines = [f"  {a.account}: {a.message}" for a in pending] or ["  (none)"]
        _say(out, f"#{group_id} applications:\n" + "\n".join(lines))
    else:
        _say(out, f"usage: {_usage(head)}")


def describe(group: GroupInfo) -> str:
    """A few lines about a group, as ``/info`` prints them."""
    admins = [m.account for m in group.members if m.admin]
    muted = [m.account for m in group.members if m.muted]
    lines = [
        f"#{group.group_id} {group.name}: owner {group.owner}, {group.join_policy}"
        + (", muted" if group.muted else ""),
        f"  members: {', '.join(m.account for m in group.members)}",
    ]
    if admins:
        lines.append(f"  admins: {', '.join(admins)}")
    if muted:
        lines.append(f"  muted: {', '.join(muted)}")
    if group.announcement:
        lines.append(f"  announcement: {group.announcement}")
    return "\n".join(lines)


def _usage(head: str) -> str:
    for usage in GROUP_HELP.split(" | "):
        if usage.split()[0] == head:
            return usage
    return GROUP_HELP


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
