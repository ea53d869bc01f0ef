"""How the suite measures: interleaved wall-clock rounds, peak memory, the machine.

Timing: every candidate of a case (library, reference, irreducible work; eager and
compiled) runs once per round, in an order rotated from round to round, so a burst of load
from other processes hits all candidates alike. A candidate's figure is the median over
rounds; a ratio is the median over rounds of the ratio within the round. The clock is the
wall clock, or, with one torch thread on CPU, the process's CPU time (``time.process_time``:
user + system time of this process, page faults included), which does not count the time
the process waits while other processes hold the cores. On a shared machine that removes
most of the noise; on an idle one the two agree.

Allocator: glibc's malloc returns freed blocks above a size threshold to the OS, and the
next allocation of that size pays page faults again, so a 16 MiB tensor's time can depend
more on the allocator's state than on the op. :func:`keep_freed_memory` pins the thresholds
(as the caching allocators PyTorch recommends for CPU do), for every candidate alike.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated``. On CPU, torch's allocations are
invisible to ``tracemalloc`` (they do not go through Python's allocator), so we run one
step under ``torch.profiler`` with ``profile_memory=True``: every allocation and free of
torch's CPU allocator is recorded with its size, and the running sum of those events over
time is the memory the step holds on top of what existed before it; its maximum is the
step's peak. We report ``inputs + that maximum``: the bytes live at the worst moment of the
forward+backward, returned gradients included.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks (up to 32 MiB each) in the process."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # pragma: no cover - not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(
        libc.mallopt(m_trim_threshold, 2**30)
    )


def pick_clock(device: torch.device) -> str:
    """``"cpu"`` (process CPU time) when one torch thread runs on CPU, else ``"wall"``."""
    return "cpu" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall"


def time_rounds(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    device: torch.device,
    warmup: int = 2,
    clock: str = "wall",
) -> dict[str, list[float]]:
    """Seconds of each candidate, one call per round, order rotated per round."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()  # a collection inside a timed call is noise, not the objective's cost
    try:
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = now()
                candidates[name]()
                synchronize(device)
                samples[name].append(now() - t0)
    finally:
        gc.enable()
    return samples


def median_ms(samples: list[float]) -> float:
    return 1e3 * statistics.median(samples)


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of ``num / den`` taken within each round."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ start/stop banner (written straight to fd 2)."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover - no stderr to silence
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


def peak_bytes(
    steps: dict[str, Callable[[], object]], device: torch.device, input_bytes: dict[str, int]
) -> dict[str, int]:
    """Bytes live at the peak of one call of each step: its inputs plus what it allocates.

    A step should return what a training step keeps (the gradients), so they are counted.
    On CPU all steps run in one profiler session, each in its own ``record_function`` range.
    """
    gc.collect()
    if device.type == "cuda":
        peaks = {}
        for name, step in steps.items():
            synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            out = step()
            synchronize(device)
            peaks[name] = input_bytes[name] + torch.cuda.max_memory_allocated(device) - before
            del out
        return peaks
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _quiet_stderr():
        with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
            for name, step in steps.items():
                with torch.profiler.record_function(f"peak_bytes:{name}"):
                    out = step()
                    del out
    events = prof.profiler.kineto_results.events()
    memory = sorted(
        (e.start_ns(), e.nbytes())
        for e in events
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    peaks = {}
    for e in events:
        if not e.name().startswith("peak_bytes:"):
            continue
        live = peak = 0
        for t, nbytes in memory:
            if e.start_ns() <= t <= e.end_ns():
                live += nbytes
                peak = max(peak, live)
        name = e.name().split(":", 1)[1]
        peaks[name] = input_bytes[name] + peak
    return peaks


def machine() -> dict[str, object]:
    """What the figures were taken on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = os.getloadavg()
    return info
