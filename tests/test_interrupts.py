"""Ctrl-C and SIGTERM under a launch: noted while the driver writes, raised at a safe point or
at once while it only waits. Real signals, sent to this process."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

from groupwise import _interrupts as interrupts


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_outside_a_wait_waits_for_the_next_safe_point(sent):
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    with interrupts.deferring():
        os.kill(os.getpid(), sent)  # as if mid-write: delivered, but nothing raised here
        written = sum(range(1000))  # the "write" goes on to its end
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(sent)}"):
            interrupts.check()
        interrupts.check()  # raised once, not again
    assert written == 499500
    assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


def test_a_signal_during_a_wait_interrupts_it_at_once():
    """The wait would outlast any test run; the signal ends it."""
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    with interrupts.deferring():
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            _wait_in(interrupts.interruptible())
    timer.join()


def _wait_in(section: contextlib.AbstractContextManager[None]) -> None:
    with section:
        while True:
            time.sleep(3600)


def test_a_signal_noted_before_a_wait_is_raised_on_entering_it():
    with interrupts.deferring():
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt), interrupts.interruptible():
            pytest.fail("the wait began although a signal was pending")


def test_outside_a_launch_and_off_the_main_thread_nothing_changes():
    # Python's own Ctrl-C handler, even when the suite runs as a background job (SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _python_s_own_and_a_thread_s()
    finally:
        signal.signal(signal.SIGINT, previous)


def _python_s_own_and_a_thread_s() -> None:
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):  # Python's own Ctrl-C, raised where it lands
        _wait_in(contextlib.nullcontext())

    seen: list[object] = []

    def elsewhere() -> None:
        with interrupts.deferring():
            seen.append(signal.getsignal(signal.SIGINT))
            interrupts.check()
            with interrupts.interruptible():
                seen.append("waited")

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler, "waited"]
