"""The integrity checker on hand-made histories: it must see every kind of failure.

No server: each test writes down what was sent and what each user's ``messages()``
yielded, and asserts the counts of :func:`cirno.verify._check`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cirno.verify import IntegrityConfig, IntegrityReport, _check, _Send, _User
from cirno.verify_check import FaultResult, fault_outcomes
from cirno_sdk import Direction, Message

GROUP = "g1"


def user(account: str) -> _User:
    return _User(account, f"ws://{account}.invalid/")


def send(sender: _User, to: str, *, mid: int, group: bool = False, seq: int = 0) -> _Send:
    record = _Send(
        tag=f"{sender.account}#{len(sender.sends)}",
        sender=sender.account,
        to=to,
        group=group,
        index=len(sender.sends),
        state="acked",
        message_id=mid,
        seq=seq,
    )
    sender.sends.append(record)
    return record


def deliver(
    receiver: _User, record: _Send, *, mid: int = 0, seq: int = 0, push: bool = True
) -> None:
    receiver.deliveries.append(
        Message(
            message_id=mid or record.message_id,
            sender=record.sender,
            to="" if record.group else receiver.account,
            group=record.to if record.group else "",
            type=1,
            body=record.tag,
            extra="",
            send_time=0,
            seq=seq,
            client_msg_id="c" if push else "",
        )
    )


def check(*users: _User, groups: tuple[str, ...] = ()) -> IntegrityReport:
    return _check(list(users), list(groups), 1.0, [])


def test_a_clean_history_passes_and_prints_the_line() -> None:
    a, b, c = user("a"), user("b"), user("c")
    deliver(b, send(a, "b", mid=1))
    deliver(b, send(a, "b", mid=2))
    g = send(c, GROUP, mid=3, group=True, seq=1)
    deliver(a, g, seq=1)
    deliver(b, g, seq=1)
    report = check(a, b, c, groups=(GROUP,))
    assert report.ok
    assert (report.acknowledged, report.expected, report.delivered) == (3, 4, 4)
    assert report.line == "3 acknowledged, 4 delivered, 0 lost, 0 duplicated, 0 out of order"
    assert report.render().endswith(report.line)


def test_a_missing_receiver_is_lost() -> None:
    a, b, c = user("a"), user("b"), user("c")
    deliver(b, send(a, "b", mid=1))
    g = send(a, GROUP, mid=2, group=True, seq=1)
    deliver(b, g, seq=1)  # c never gets it
    report = check(a, b, c, groups=(GROUP,))
    assert (report.lost, report.delivered, report.expected) == (1, 2, 3)
    assert not report.ok
    assert "never reached c" in report.problems[0]


def test_twice_to_one_receiver_or_two_ids_for_one_send_is_duplicated() -> None:
    a, b = user("a"), user("b")
    first = send(a, "b", mid=1)
    deliver(b, first)
    deliver(b, first)  # the same message twice
    second = send(a, "b", mid=2)
    deliver(b, second, mid=99)  # a resend stored again under another id
    report = check(a, b)
    assert report.duplicated == 2
    assert report.lost == 0


def test_one_to_one_order_is_the_senders_order() -> None:
    a, b = user("a"), user("b")
    first, second = send(a, "b", mid=5), send(a, "b", mid=6)
    deliver(b, second)
    deliver(b, first, push=False)
    report = check(a, b)
    assert report.out_of_order == 1
    assert "by sync" in report.problems[0]


def test_group_order_is_the_servers_sequence() -> None:
    a, b, c = user("a"), user("b"), user("c")
    one = send(a, GROUP, mid=1, group=True, seq=1)
    two = send(b, GROUP, mid=2, group=True, seq=2)
    deliver(c, two, seq=2)
    deliver(c, one, seq=1)
    deliver(b, one, seq=1)
    deliver(a, two, seq=2)
    report = check(a, b, c, groups=(GROUP,))
    assert report.out_of_order == 1
    assert report.lost == 0


def test_unconfirmed_sends_may_arrive_but_strangers_may_not() -> None:
    a, b, c = user("a"), user("b"), user("c")
    lost_answer = send(a, "b", mid=0)
    lost_answer.state = "failed"
    deliver(b, lost_answer, mid=7)
    deliver(c, send(a, "b", mid=8))  # to c, but sent to b
    report = check(a, b, c)
    assert report.unconfirmed == 1 and report.unconfirmed_delivered == 1
    assert report.unexpected == 1 and report.lost == 1
    assert not report.ok


def test_own_messages_synced_back_are_not_deliveries() -> None:
    a, b = user("a"), user("b")
    record = send(a, "b", mid=1)
    deliver(b, record)
    deliver(a, record)
    a.deliveries[-1] = Message(1, "a", "b", "", 1, record.tag, "", 0, direction=Direction.SENT)
    report = check(a, b)
    assert report.ok and report.echoes == 1


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        IntegrityConfig(gateway_urls=(), tenant="t", secret="s")
    with pytest.raises(ValueError):
        IntegrityConfig(gateway_urls=("ws://x/",), tenant="t", secret="s", users=1)


def test_fault_recovery_and_delays_come_from_send_and_arrival_times() -> None:
    a, b = user("a"), user("b")
    before = send(a, "b", mid=1)
    before.started, before.done_at = 10.0, 10.1
    during = send(a, "b", mid=2)
    during.started, during.done_at = 12.0, 15.5  # answered after the fault ended (15.0)
    after = send(a, "b", mid=3)
    after.started, after.done_at = 16.0, 16.1
    for record, arrived in ((before, 10.2), (during, 15.8), (after, 16.2)):
        deliver(b, record)
        b.arrivals.append(arrived)
    fault = FaultResult("logic-kill", 11.0, 15.0, {"status": -9})
    [result] = fault_outcomes([a, b], [a, b], [fault])
    assert result.send_recovery == pytest.approx(0.5)  # a's first ack after 15.0
    assert result.delivery_recovery == pytest.approx(0.8)  # b's first arrival after 15.0
    assert result.longest_delay == pytest.approx(3.8)  # sent at 12.0, arrived at 15.8
    assert "fault logic-kill: 4.0 s" in result.render()
    report = check(a, b)
    assert report.longest_delay == pytest.approx(3.8)


def test_the_kim_line_comes_before_the_sdk_line() -> None:
    a, b = user("a"), user("b")
    deliver(b, send(a, "b", mid=1))
    sender, k = user("a"), user("k")
    send(sender, "k", mid=2)  # the kim-style receiver never got it
    kim = _check([sender, k], [], 1.0, [], kind="kim")
    assert kim.lost == 1
    report = replace(check(a, b), kim=kim)
    lines = report.render().splitlines()
    assert (
        "kim receivers: 1 acknowledged, 0 delivered, 1 lost, 0 duplicated, 0 out of order" in lines
    )
    assert lines[-1] == report.line and not report.ok  # the kim loss fails the run
