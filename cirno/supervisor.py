"""Keep a set of child processes running: restart the ones that fail, with back-off.

Theory of operation
-------------------
Each child is a name plus a ``start`` function that launches it (a ``Popen``); the
supervisor holds the current process of each. :meth:`Supervisor.check` is one
non-blocking step, called every fraction of a second by the owner's loop:

- a child that **failed** (a non-zero status, or killed by a signal -- ``kill -9``,
  an OOM kill, a crash) is logged and restarted after a delay; the delay starts at
  ``RestartPolicy.initial`` and is multiplied by ``multiplier`` after each failure in a
  row, up to ``maximum``, so a child that keeps crashing costs one start per
  ``maximum`` seconds and never a busy loop; once a child has run ``stable_after``
  seconds, its next failure starts the delays over;
- a child that **exited with status 0** (a gateway drained with SIGTERM, a Redis node
  told to SHUTDOWN) finished on purpose: it is logged and left stopped, as systemd's
  ``Restart=on-failure`` does;
- a child put on :meth:`Supervisor.hold` is not restarted until :meth:`Supervisor.release`
  (which also brings back a child that exited cleanly) -- for planned outages, such as
  a fault the integrity harness keeps down for a while;
- :meth:`Supervisor.stop` stops every child in the order they were added (SIGTERM,
  SIGKILL after a grace period) and no child is restarted after it.

Guarantees: every exit and every restart is logged with the child's name, its status
and its restart count; restarts happen only in :meth:`check` and never after
:meth:`stop`; delays read the injected clock, so tests drive them without sleeping.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

Start = Callable[[], "subprocess.Popen[bytes]"]
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Restart delays: ``initial`` after the first failure, times ``multiplier`` after
    each further failure in a row, never more than ``maximum``; a child that ran
    ``stable_after`` seconds starts over at ``initial``."""

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    stable_after: float = 10.0

    def delay(self, failures_in_a_row: int) -> float:
        """The delay before restarting after the ``failures_in_a_row``-th failure (1, 2, …)."""
        return min(self.maximum, self.initial * self.multiplier ** max(0, failures_in_a_row - 1))


@dataclass(slots=True)
class Child:
    """One supervised process and its history (read-only for everyone but the supervisor)."""

    name: str
    start: Start
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    finished: bool = False  # exited with 0: left stopped
    held: bool = False  # not restarted until released


class Supervisor:
    """Restarts failed children with back-off; stops them all on request."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._clock = clock
        self._log = log
        self._children: dict[str, Child] = {}
        self._stopped = False

    @property
    def children(self) -> dict[str, Child]:
        """The children by name, in the order they were added (their stopping order)."""
        return self._children

    def adopt(self, name: str, process: subprocess.Popen[bytes], start: Start) -> None:
        """Supervise ``process`` (already started); ``start`` launches a replacement."""
        self._children[name] = Child(name, start, process, started_at=self._clock())

    def add(self, name: str, start: Start) -> subprocess.Popen[bytes]:
        """Start a child with ``start`` and supervise it."""
        process = start()
        self.adopt(name, process, start)
        return process

    def order(self, key: Callable[[str], tuple[int, str]]) -> None:
        """Reorder the children (their stopping order) by ``key(name)``."""
        self._children = dict(sorted(self._children.items(), key=lambda item: key(item[0])))

    def running(self, name: str) -> bool:
        """Whether ``name``'s current process is alive."""
        return self._children[name].process.poll() is None

    def hold(self, name: str) -> subprocess.Popen[bytes]:
        """Do not restart ``name`` until :meth:`release`; its current process."""
        child = self._children[name]
        child.held = True
        return child.process

    def release(self, name: str) -> None:
        """Supervise ``name`` again; if it is not running, the next :meth:`check` starts it
        (counted as a restart)."""
        child = self._children[name]
        child.held = False
        if child.process.poll() is not None:
            child.finished = False
            child.restart_at = self._clock()

    def check(self) -> None:
        """One step: notice exits, schedule restarts, start the ones that are due."""
        if self._stopped:
            return
        now = self._clock()
        for child in self._children.values():
            if child.finished or child.held:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child, now)
                continue
            status = child.process.poll()
            if status is None:
                continue
            if status == 0:
                child.finished = True
                self._log(f"supervisor: {child.name} exited cleanly; not restarted")
                continue
            if now - child.started_at >= self.policy.stable_after:
                child.failures_in_a_row = 0
            child.failures_in_a_row += 1
            delay = self.policy.delay(child.failures_in_a_row)
            child.restart_at = now + delay
            self._log(
                f"supervisor: {child.name} exited with status {status}; "
                f"restart #{child.restarts + 1} in {delay:g} s"
            )

    def _restart(self, child: Child, now: float) -> None:
        child.restart_at = None
        child.restarts += 1
        try:
            child.process = child.start()
        except OSError as exc:
            # Counts as a failure of the child: back off and try again.
            child.failures_in_a_row += 1
            delay = self.policy.delay(child.failures_in_a_row)
            child.restart_at = now + delay
            self._log(f"supervisor: {child.name} could not start ({exc}); retry in {delay:g} s")
            return
        child.started_at = now
        self._log(
            f"supervisor: {child.name} restarted (restart #{child.restarts}, "
            f"pid {child.process.pid})"
        )

    def all_finished(self) -> bool:
        """Whether every child exited with status 0 (nothing left to supervise)."""
        return bool(self._children) and all(c.finished for c in self._children.values())

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int:
        """Stop every child in order (SIGTERM, SIGKILL after ``grace``); never restart
        one again. 0 when every child stopped cleanly and none had failed."""
        self._stopped = True
        worst = 0
        for child in self._children.values():
            process = child.process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._log(f"supervisor: {child.name} did not stop within {grace:g} s: killed")
                process.kill()
                code = process.wait()
            if code not in (0, -signal.SIGTERM) or child.restarts:
                worst = 1
        return worst
