"""Reading another process's CPU time and memory from Linux `/proc`.

CPU comes from the process's POSIX CPU clock (nanosecond resolution, all threads
included); `/proc/PID/stat` only reports 10 ms ticks, which would need far more
invokes per round for the same precision. It stays as the fallback.
"""

from __future__ import annotations

import os
import platform
import sys
import time

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CPUCLOCK_SCHED = 2


def _cpu_clock_id(pid: int) -> int:
    # What clock_getcpuclockid(3) returns on Linux: MAKE_PROCESS_CPUCLOCK(pid, SCHED).
    return ((~pid) << 3) | _CPUCLOCK_SCHED


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds consumed so far by every thread of `pid`."""
    try:
        return time.clock_gettime(_cpu_clock_id(pid))
    except OSError:
        return _stat_cpu_seconds(pid)


def _stat_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # The command name may contain spaces; the fields start after its closing paren.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages split between sharers (fair for forked workers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return rss_kib(pid)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (the harness starts each runtime in its own
    session, so this is the runtime and every worker it forked)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(entry))
    return out


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "executable": sys.executable,
    }
