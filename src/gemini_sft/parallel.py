"""The one way clean and validate read a big file in parallel: how many workers, which byte ranges.

:func:`available_cpus` honours the process's CPU affinity and a cgroup v2 CPU
quota (a container, a KFP ``set_cpu_limit``), so a step limited to 2 CPUs does
not fork 4 workers. :func:`line_aligned_ranges` cuts a file into ranges that
each start at the beginning of a line.
"""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota.

    Args:
        cpu_max: the cgroup v2 ``cpu.max`` file (``"max 100000"`` or ``"QUOTA PERIOD"``).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def worker_count(file_bytes: int, min_bytes: int, max_workers: int) -> int:
    """Workers for a file of ``file_bytes``: 1 below ``min_bytes``, else the usable CPUs up to ``max_workers``.

    Args:
        file_bytes: the size of the file to read.
        min_bytes: below this size one worker is faster than starting processes.
        max_workers: the most workers to use, whatever the CPU count.
    """
    if file_bytes < min_bytes:
        return 1
    return max(1, min(available_cpus(), max_workers))


def line_aligned_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """Split a file into up to ``parts`` byte ranges of about equal size, each starting at a line start.

    Args:
        path: the file.
        parts: how many ranges at most (fewer when the file has fewer lines).
    """
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as stream:
        for part in range(1, parts):
            stream.seek(max(size * part // parts, bounds[-1]))
            stream.readline()  # to the start of the next line
            bounds.append(min(stream.tell(), size))
    bounds.append(size)
    return [(start, end) for start, end in pairwise(bounds) if end > start]
