"""CPU time and peak memory of processes, read from /proc (Linux only).

CPU is utime+stime, so it counts work done on any core and ignores time spent waiting; a
before/after difference over the measured window is the cost of that window.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields after comm) of /proc/PID/stat, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: it runs from the first "(" to the last ")"
    return text[text.find("(") + 1: text.rfind(")")], text[text.rfind(")") + 2:].split()


def process_tree(root: int, exclude_comm: tuple[str, ...] = ()) -> list[int]:
    """`root` and all its descendants, leaving out any whose command name is in `exclude_comm`
    (e.g. the embedded PostgreSQL children of hamsrv, which are not the firehose)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat_fields(int(entry.name))
            if stat is not None:
                names[int(entry.name)] = stat[0]
                children.setdefault(int(stat[1][1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if names.get(pid) not in exclude_comm:
            found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime+stime of each live process, in seconds."""
    result = {}
    for pid in pids:
        stat = _stat_fields(pid)
        if stat is not None:
            result[pid] = (int(stat[1][11]) + int(stat[1][12])) / CLOCK_TICKS
    return result


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two snapshots; a process that exited keeps its last reading."""
    return sum(after.get(pid, start) - start for pid, start in before.items())


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of VmHWM (peak resident set) over the processes, in MiB."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kb / 1024
