"""The group-commit batcher: FIFO batches, per-item errors, failure, cancellation, close.

No test waits on the wall clock: the linger is timed by an injected ``ManualTimer``,
and the order of events is set with ``anyio.Event``s and
``anyio.wait_all_tasks_blocked`` (every other task is parked on something).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.messages.group_commit import GroupCommitter


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A flush that records its batches and doubles each item (odd items fail alone)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: anyio.Event | None = None
        self.fail_with: Exception | None = None
        self.entered = anyio.Event()
        """Set once the first flush started."""

    async def flush(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        await anyio.lowlevel.checkpoint()  # callers may queue up while a flush runs
        if self.fail_with is not None:
            raise self.fail_with
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]


class ManualTimer:
    """An injected ``sleep`` that returns only when the test fires it."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.sleeping = anyio.Event()
        self._fire = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sleeping.set()
        await self._fire.wait()

    def fire(self) -> None:
        self._fire.set()


@pytest.mark.anyio
async def test_fifo_batches_and_per_item_results() -> None:
    recorder = Recorder()
    batcher: GroupCommitter[int, int] = GroupCommitter(recorder.flush, max_batch=8)
    results: dict[int, int | str] = {}

    async def one(i: int) -> None:
        try:
            results[i] = await batcher.submit(i)
        except ValueError as exc:
            results[i] = str(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        async with anyio.create_task_group() as senders:
            for i in range(40):
                senders.start_soon(one, i)
        batcher.close()
    flat = [i for batch in recorder.batches for i in batch]
    assert flat == list(range(40))
    assert all(len(batch) <= 8 for batch in recorder.batches)
    assert len(recorder.batches) < 40
    assert results == {i: f"odd {i}" if i % 2 else i * 2 for i in range(40)}
    assert batcher.flushes == len(recorder.batches)
    assert batcher.flushed_items == 40


@pytest.mark.anyio
async def test_a_failed_flush_fails_every_caller_of_the_batch() -> None:
    recorder = Recorder()
    recorder.fail_with = ConnectionError("db gone")
    batcher: GroupCommitter[int, int] = GroupCommitter(recorder.flush)
    errors: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            await batcher.submit(i)
        except MessageStoreUnavailable as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        async with anyio.create_task_group() as senders:
            for i in range(10):
                senders.start_soon(one, i * 2)
        batcher.close()
    assert len(errors) == 10
    assert all(isinstance(e.__cause__, ConnectionError) for e in errors)


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_break_the_writer() -> None:
    recorder = Recorder()
    recorder.gate = anyio.Event()
    batcher: GroupCommitter[int, int] = GroupCommitter(recorder.flush, linger_s=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        with anyio.CancelScope() as caller:
            tg.start_soon(cancel_when_entered, recorder, caller)
            await batcher.submit(2)  # its flush waits on the gate: cancelled there
        assert caller.cancelled_caught
        recorder.gate.set()
        assert await batcher.submit(4) == 8
        batcher.close()
    assert recorder.batches == [[2], [4]]


async def cancel_when_entered(recorder: Recorder, scope: anyio.CancelScope) -> None:
    await recorder.entered.wait()
    scope.cancel()


@pytest.mark.anyio
async def test_linger_collects_a_burst_into_one_batch() -> None:
    recorder = Recorder()
    timer = ManualTimer()
    batcher: GroupCommitter[int, int] = GroupCommitter(
        recorder.flush, linger_s=0.05, sleep=timer.sleep
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        async with anyio.create_task_group() as senders:
            senders.start_soon(batcher.submit, 0)
            await timer.sleeping.wait()  # the writer lingers after the first item
            for i in range(1, 5):
                senders.start_soon(batcher.submit, i * 2)
                await anyio.wait_all_tasks_blocked()
            assert recorder.batches == []  # nothing flushed while the timer runs
            timer.fire()
        batcher.close()
    assert recorder.batches == [[0, 2, 4, 6, 8]]
    assert timer.slept == [0.05]


@pytest.mark.anyio
async def test_a_full_batch_ends_the_linger_without_the_timer() -> None:
    recorder = Recorder()
    timer = ManualTimer()
    batcher: GroupCommitter[int, int] = GroupCommitter(
        recorder.flush, linger_s=60, max_batch=3, sleep=timer.sleep
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        async with anyio.create_task_group() as senders:
            senders.start_soon(batcher.submit, 0)
            await timer.sleeping.wait()
            senders.start_soon(batcher.submit, 2)
            senders.start_soon(batcher.submit, 4)
        # The senders got their answers although the timer never fired.
        batcher.close()
    assert recorder.batches == [[0, 2, 4]]


@pytest.mark.anyio
async def test_close_drains_then_refuses() -> None:
    recorder = Recorder()
    batcher: GroupCommitter[int, int] = GroupCommitter(recorder.flush)
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await batcher.submit(i))

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(one, i * 2)
        await anyio.wait_all_tasks_blocked()  # queued before the writer even starts
        batcher.close()
        tg.start_soon(batcher.run)
    assert sorted(results) == [0, 4, 8]
    await batcher.wait_stopped()
    with pytest.raises(MessageStoreUnavailable):
        await batcher.submit(2)


@pytest.mark.anyio
async def test_a_cancelled_writer_fails_what_is_still_queued() -> None:
    recorder = Recorder()
    recorder.gate = anyio.Event()
    batcher: GroupCommitter[int, int] = GroupCommitter(recorder.flush, linger_s=0)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(str(await batcher.submit(i)))
        except MessageStoreUnavailable:
            outcomes.append("unavailable")

    async with anyio.create_task_group() as tg, anyio.create_task_group() as writer:
        writer.start_soon(batcher.run)
        tg.start_soon(one, 2)
        await recorder.entered.wait()  # 2's flush is in progress, held at the gate
        tg.start_soon(one, 4)
        await anyio.wait_all_tasks_blocked()  # 4 is queued behind it
        assert recorder.batches == [[2]]
        writer.cancel_scope.cancel()
        # The flush in progress is shielded: it completes and answers truthfully.
        recorder.gate.set()
    assert sorted(outcomes) == ["4", "unavailable"]
