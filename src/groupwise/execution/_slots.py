"""Virtual slots: the pool as the driver sees it when each worker trains ``k`` candidates at
once (``workers.batch``). Slot ``w * k + j`` is candidate ``j`` of worker ``w``; the driver
starts, continues and ends trials on slots exactly as with one trial per worker, and this
layer turns them into one call per worker and epoch (``Worker.step_batch``), then hands the
replies back one slot at a time. No Ray here: the :class:`WorkerPool` underneath makes the
calls.

A worker starts a batch only when its previous one has ended (every candidate closed by
the driver), with the trials the driver started on its free slots; it trains the next epoch
once the driver has decided for every live candidate (continue, or end it: ended ones are
dropped from the batch at the next call). A worker that dies, or is replaced because one
candidate timed out, loses the others: each is answered :class:`Lost` (retried).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from groupwise.execution._protocol import Lost, Reply, Trained

if TYPE_CHECKING:
    from groupwise.execution._pool import WorkerPool

__all__ = ["BatchedPool"]

log = logging.getLogger("groupwise")


class BatchedPool:
    """``pool``'s workers, ``k`` virtual slots each."""

    def __init__(self, pool: WorkerPool, k: int) -> None:
        self.pool, self.k = pool, k
        self.capacity = pool.count * k
        self.live: dict[int, set[int]] = {}  # worker -> its candidates in the current batch
        self.starts: dict[int, list[tuple[int, dict[str, Any], int | None]]] = {}
        self.going_on: dict[int, set[int]] = {}  # worker -> candidates told to go on
        self.drops: dict[int, list[int]] = {}  # worker -> candidates ended since its last call
        self.replies: deque[tuple[int, Reply]] = deque()
        self.alone: set[str] = set()  # why trials could not batch, each said once

    # -- life, as the pool's ----------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()

    def close(self) -> None:
        self.pool.close()

    def wait_started(self) -> None:
        self.pool.wait_started()

    def device_memory(self) -> list[int | None]:
        return self.pool.device_memory()

    # -- slots ------------------------------------------------------------------------------
    def free(self) -> list[int]:
        """Slots a trial may start on: those of idle workers whose batch has ended, not yet
        given a trial."""
        slots: list[int] = []
        for w in self.pool.free():
            if self.live.get(w):
                continue
            taken = {slot for slot, _, _ in self.starts.get(w, [])}
            slots.extend(s for s in range(w * self.k, (w + 1) * self.k) if s not in taken)
        return slots

    def submit(self, slot: int, config: dict[str, Any] | None, seed: int | None = None) -> None:
        """Start a trial on a free slot (``config``), or train its next epoch (None)."""
        w = slot // self.k
        if config is not None:
            self.starts.setdefault(w, []).append((slot, config, seed))
        else:
            self.going_on.setdefault(w, set()).add(slot)

    def companions(self, slot: int) -> int:
        """After a trial started on ``slot``: how many more trials its worker's new batch
        can take, when it was the batch's first (else 0)."""
        starts = self.starts.get(slot // self.k, [])
        return self.k - 1 if len(starts) == 1 and starts[0][0] == slot else 0

    def release(self, slot: int) -> None:
        """The driver has ended the trial on ``slot``: drop it from its batch."""
        w = slot // self.k
        if slot in self.live.get(w, set()):
            self.live[w].discard(slot)
            self.drops.setdefault(w, []).append(slot)
        self.going_on.get(w, set()).discard(slot)
        self.replies = deque(r for r in self.replies if r[0] != slot)

    def replace(self, slot: int) -> None:
        """Stop ``slot``'s worker mid-epoch (its trial timed out) and start a new one; the
        other candidates of its batch are lost with it."""
        w = slot // self.k
        if slot not in self.live.get(w, set()):
            return  # its batch's worker was replaced already (another candidate timed out)
        others = self.live.pop(w) - {slot}
        self.pool.replace(w)
        self.going_on.pop(w, None)
        self.drops.pop(w, None)
        for other in sorted(others):
            reason = f"worker lost: replaced when trial on slot {slot} of its batch timed out"
            self.replies.append((other, Lost(reason)))

    # -- calls ------------------------------------------------------------------------------
    def wait(self, timeout_s: float) -> tuple[int, Reply] | None:
        """The next candidate's reply, or None (timeout, or a worker became free)."""
        self._flush()
        if self.replies:
            return self.replies.popleft()
        got = self.pool.wait_raw(timeout_s)
        if got is None:
            return None
        w, answer = got
        if isinstance(answer, Lost):
            for slot in sorted(self.live.pop(w, set())):
                self.replies.append((slot, answer))
            self.going_on.pop(w, None)
        else:
            self.replies.extend(answer)
            for _, reply in answer:
                if isinstance(reply, Trained):
                    self._say_alone(reply.report.training.get("alone_because"))
            # a candidate that trained waits for the driver; one that stopped has left
            self.live[w] = {slot for slot, reply in answer if isinstance(reply, Trained)}
        return self.replies.popleft() if self.replies else None

    def _say_alone(self, reason: str | None) -> None:
        """Say once per reason why trials of this study train one at a time."""
        if reason and reason not in self.alone:
            self.alone.add(reason)
            log.warning("workers.batch: some trials train one at a time: %s", reason)

    def _flush(self) -> None:
        """Call each idle worker that has its orders: a new batch, or every live candidate's
        next epoch."""
        for w in self.pool.free():
            live, starts = self.live.get(w, set()), self.starts.get(w)
            if not live and starts:
                self.pool.submit_batch(w, starts, self.drops.pop(w, []))
                self.live[w] = {slot for slot, _, _ in starts}
                del self.starts[w]
            elif live and live <= self.going_on.get(w, set()):
                self.pool.submit_batch(w, [], self.drops.pop(w, []))
                self.going_on[w] = set()
