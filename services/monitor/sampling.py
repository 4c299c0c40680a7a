"""System sampling: raw counters in, rates and percentages out.

A :class:`SystemReader` returns cumulative counters (CPU times, bytes read and written, bytes sent
and received) and instantaneous values (memory, load, per-process RSS and open files);
:class:`RateSampler` turns two consecutive readings into samples: CPU %, per-core CPU %, bytes per
second. The reader is a Protocol so tests hand in readings they make; the real one is psutil's
(``services.monitor.psutil_reader``).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from services.monitor.series import LabelSet

__all__ = [
    "METRICS",
    "Clock",
    "CpuTimes",
    "ProcessReading",
    "RateSampler",
    "Sample",
    "SystemClock",
    "SystemReader",
    "SystemReading",
]


class Clock(Protocol):
    """Where the monitor reads the time (seconds since the epoch). Tests drive their own."""

    def time(self) -> float:
        """Now."""
        ...


class SystemClock:
    """The wall clock."""

    def time(self) -> float:
        """Now, from time.time()."""
        return _time.time()


class CpuTimes(NamedTuple):
    """Cumulative CPU seconds of one core (or of all): busy and total."""

    busy: float
    total: float


@dataclass(frozen=True)
class ProcessReading:
    """One suite process at one moment."""

    name: str
    pid: int
    rss_bytes: int
    open_fds: int
    cpu_seconds: float


@dataclass(frozen=True)
class SystemReading:
    """Everything one sampling reads: counters are cumulative, the rest instantaneous."""

    cores: tuple[CpuTimes, ...]
    memory_percent: float
    memory_used_bytes: int
    swap_percent: float
    disk_read_bytes: int
    disk_write_bytes: int
    net_sent_bytes: int
    net_recv_bytes: int
    load: tuple[float, float, float]
    processes: tuple[ProcessReading, ...] = field(default=())


class SystemReader(Protocol):
    """Reads the system's counters (blocking: the monitor calls it off the event loop)."""

    def read(self) -> SystemReading:
        """One reading."""
        ...


class Sample(NamedTuple):
    """One value of one series, ready for the store."""

    name: str
    labels: LabelSet
    value: float


# name -> (unit, description); the source of all of them is "psutil"
METRICS: dict[str, tuple[str, str]] = {
    "system.cpu.percent": ("%", "CPU busy, all cores, over the last interval"),
    "system.cpu.core.percent": ("%", "CPU busy of one core (label core) over the last interval"),
    "system.memory.percent": ("%", "memory in use"),
    "system.memory.used": ("By", "memory in use"),
    "system.swap.percent": ("%", "swap in use"),
    "system.disk.read.rate": ("By/s", "bytes read from disks per second"),
    "system.disk.write.rate": ("By/s", "bytes written to disks per second"),
    "system.network.receive.rate": ("By/s", "bytes received per second, all interfaces"),
    "system.network.send.rate": ("By/s", "bytes sent per second, all interfaces"),
    "system.load.1m": ("1", "load average over 1 minute"),
    "system.load.5m": ("1", "load average over 5 minutes"),
    "system.load.15m": ("1", "load average over 15 minutes"),
    "process.rss": ("By", "resident memory of a suite process (label process)"),
    "process.open_fds": ("1", "open file descriptors of a suite process (label process)"),
    "process.cpu.percent": ("%", "CPU of a suite process over the last interval, % of one core"),
}


def _percent(now: CpuTimes, before: CpuTimes) -> float:
    total = now.total - before.total
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (now.busy - before.busy) / total))


def _rate(now: int, before: int, seconds: float) -> float:
    # A counter that went down was reset (device removed, wrap): no rate for this interval.
    return max(0, now - before) / seconds


class RateSampler:
    """Turns consecutive readings into samples. The first reading only sets the baseline for rates."""

    def __init__(self) -> None:
        self._previous: SystemReading | None = None
        self._previous_time = 0.0

    def samples(self, reading: SystemReading, at: float) -> list[Sample]:
        """Samples for this reading taken at time ``at``."""
        out = [
            Sample("system.memory.percent", (), reading.memory_percent),
            Sample("system.memory.used", (), float(reading.memory_used_bytes)),
            Sample("system.swap.percent", (), reading.swap_percent),
            Sample("system.load.1m", (), reading.load[0]),
            Sample("system.load.5m", (), reading.load[1]),
            Sample("system.load.15m", (), reading.load[2]),
        ]
        for proc in reading.processes:
            labels = (("process", proc.name),)
            out.append(Sample("process.rss", labels, float(proc.rss_bytes)))
            out.append(Sample("process.open_fds", labels, float(proc.open_fds)))
        before, seconds = self._previous, at - self._previous_time
        if before is not None and seconds > 0:
            out.extend(self._rates(reading, before, seconds))
        self._previous, self._previous_time = reading, at
        return out

    def _rates(self, now: SystemReading, before: SystemReading, seconds: float) -> list[Sample]:
        out: list[Sample] = []
        if len(now.cores) == len(before.cores) and now.cores:
            total_now = CpuTimes(sum(c.busy for c in now.cores), sum(c.total for c in now.cores))
            total_before = CpuTimes(sum(c.busy for c in before.cores), sum(c.total for c in before.cores))
            out.append(Sample("system.cpu.percent", (), _percent(total_now, total_before)))
            for core, (a, b) in enumerate(zip(now.cores, before.cores, strict=True)):
                out.append(Sample("system.cpu.core.percent", (("core", str(core)),), _percent(a, b)))
        out.append(
            Sample("system.disk.read.rate", (), _rate(now.disk_read_bytes, before.disk_read_bytes, seconds))
        )
        out.append(
            Sample(
                "system.disk.write.rate", (), _rate(now.disk_write_bytes, before.disk_write_bytes, seconds)
            )
        )
        out.append(
            Sample(
                "system.network.receive.rate", (), _rate(now.net_recv_bytes, before.net_recv_bytes, seconds)
            )
        )
        out.append(
            Sample("system.network.send.rate", (), _rate(now.net_sent_bytes, before.net_sent_bytes, seconds))
        )
        previous = {p.name: p for p in before.processes}
        for proc in now.processes:
            old = previous.get(proc.name)
            if old is not None and old.pid == proc.pid and proc.cpu_seconds >= old.cpu_seconds:
                percent = 100.0 * (proc.cpu_seconds - old.cpu_seconds) / seconds
                out.append(Sample("process.cpu.percent", (("process", proc.name),), percent))
        return out
