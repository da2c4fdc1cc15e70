"""A trial's peak memory, as its run records it and memory admission learns from."""

from __future__ import annotations

import resource
import sys

import torch

__all__ = ["PeakMemory"]


class PeakMemory:
    """The peak of one trial from its start: CUDA's allocated peak on a GPU; on Linux the
    worker process's resident peak since the trial began (the kernel's VmHWM, reset at the
    start); elsewhere the process's lifetime peak, which the trials before may have set."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.own = True
        else:
            self.own = _reset_peak_rss()

    def bytes(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.own:
            peak = _peak_rss()
            if peak is not None:
                return peak
        # ru_maxrss is KiB on Linux, bytes on macOS: the peak of the whole worker process
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)


def _reset_peak_rss() -> bool:
    """Reset the kernel's record of this process's peak resident memory (Linux: writing 5 to
    /proc/self/clear_refs resets VmHWM), so that a trial measures its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _peak_rss() is not None
    except OSError:
        return False


def _peak_rss() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None
