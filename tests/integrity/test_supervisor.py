"""The supervisor on real short-lived processes, with its clock driven by the test.

A child killed with SIGKILL comes back (a new pid, the restart counted and logged); a
child that keeps crashing waits longer each time, up to the maximum; one that exits
with status 0 stays stopped; ``stop`` ends everything and restarts nothing afterwards.
Process exits are real (the test waits for them); only the back-off delays are on the
fake clock, so nothing sleeps for a delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from cirno.supervisor import RestartPolicy, Supervisor


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def sleeper() -> subprocess.Popen[bytes]:
    return python("import time; time.sleep(60)")


def crasher() -> subprocess.Popen[bytes]:
    return python("raise SystemExit(3)")


def finisher() -> subprocess.Popen[bytes]:
    return python("pass")


def make(clock: Clock, lines: list[str]) -> Supervisor:
    policy = RestartPolicy(initial=0.5, maximum=4.0, multiplier=2.0, stable_after=10.0)
    return Supervisor(policy, clock=clock, log=lines.append)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_child_is_restarted_after_the_delay_and_counted() -> None:
    clock, lines = Clock(), list[str]()
    sup = make(clock, lines)
    first = sup.add("logic-1", sleeper)
    try:
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        sup.check()
        child = sup.children["logic-1"]
        assert child.process is first and child.restart_at == clock.now + 0.5
        assert "logic-1 exited with status -9; restart #1 in 0.5 s" in lines[-1]
        clock.now += 0.4
        sup.check()
        assert child.process is first  # not yet: the delay has not passed
        clock.now += 0.1
        sup.check()
        assert child.process is not first and sup.running("logic-1")
        assert alive(child.process.pid) and not alive(first.pid)
        assert child.restarts == 1 and "restarted (restart #1" in lines[-1]
    finally:
        assert sup.stop(grace=5) == 1  # a restart happened: the run was not clean
    assert not sup.running("logic-1")


def test_a_child_that_keeps_crashing_backs_off_up_to_the_maximum() -> None:
    clock, lines = Clock(), list[str]()
    sup = make(clock, lines)
    sup.add("redis-7001", crasher)
    delays: list[float] = []
    for _ in range(6):
        child = sup.children["redis-7001"]
        child.process.wait(timeout=10)
        sup.check()
        assert child.restart_at is not None
        delays.append(round(child.restart_at - clock.now, 3))
        clock.now = child.restart_at
        sup.check()  # restarts it: a real new process, which crashes again
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert sup.children["redis-7001"].restarts == 6
    # After running for stable_after seconds, a failure starts the delays over.
    child = sup.children["redis-7001"]
    child.process.wait(timeout=10)
    clock.now += 10.0
    sup.check()
    assert child.restart_at == clock.now + 0.5
    sup.stop(grace=5)


def test_a_clean_exit_is_left_stopped_and_stop_restarts_nothing() -> None:
    clock, lines = Clock(), list[str]()
    sup = make(clock, lines)
    done = sup.add("gw-1", finisher)
    other = sup.add("gw-2", sleeper)
    assert done.wait(timeout=10) == 0
    sup.check()
    clock.now += 100
    sup.check()
    assert sup.children["gw-1"].finished and sup.children["gw-1"].process is done
    assert "supervisor: gw-1 exited cleanly; not restarted" in lines
    assert not sup.all_finished()
    assert sup.stop(grace=5) == 0
    assert other.poll() == -signal.SIGTERM
    clock.now += 100
    sup.check()
    assert sup.children["gw-2"].process is other and sup.children["gw-2"].restarts == 0


def test_a_held_child_stays_down_until_released_even_after_a_clean_exit() -> None:
    clock, lines = Clock(), list[str]()
    sup = make(clock, lines)
    first = sup.add("control", sleeper)
    try:
        assert sup.hold("control") is first
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)
        clock.now += 100
        sup.check()
        assert sup.children["control"].process is first  # held: no restart, however long
        sup.release("control")
        sup.check()
        child = sup.children["control"]
        assert child.process is not first and sup.running("control")
        assert child.restarts == 1 and not child.held
        # A gateway that drained (exit 0) is brought back by release as well.
        done = sup.add("gw-1", finisher)
        done.wait(timeout=10)
        sup.check()
        assert sup.children["gw-1"].finished
        sup.release("gw-1")
        sup.check()
        assert sup.children["gw-1"].process is not done
    finally:
        sup.stop(grace=5)
