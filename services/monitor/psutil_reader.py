"""The real :class:`~services.monitor.sampling.SystemReader`: psutil over /proc.

Suite processes are found by the port they listen on, among the monitor's siblings (the children of
its parent, which is what ``mediasuite up`` and the tests start) and the monitor itself. A process
not found is looked for again at most every ``rediscover_seconds``; one that exits is dropped and
looked for again, so a restarted process is picked up with its new pid.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

import psutil

from services.monitor.sampling import CpuTimes, ProcessReading, SystemReading

__all__ = ["PsutilReader"]

log = logging.getLogger("mediasuite.monitor.psutil")


def _port(address: str) -> int | None:
    tail = address.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


class PsutilReader:
    """Reads CPU, memory, swap, disk and network counters, load, and each suite process."""

    def __init__(
        self, processes: Mapping[str, str], *, self_name: str = "monitor", rediscover_seconds: float = 15.0
    ) -> None:
        self._ports = {name: port for name, addr in processes.items() if (port := _port(addr)) is not None}
        self._self_name = self_name
        self._found: dict[str, psutil.Process] = {self_name: psutil.Process()}
        self._rediscover = rediscover_seconds
        self._last_search = -rediscover_seconds

    def read(self) -> SystemReading:
        """One reading of everything (a few reads of /proc; about a millisecond)."""
        cores = tuple(
            CpuTimes(
                t.user
                + t.nice
                + t.system
                + getattr(t, "irq", 0.0)
                + getattr(t, "softirq", 0.0)
                + getattr(t, "steal", 0.0),
                sum(t),
            )
            for t in psutil.cpu_times(percpu=True)
        )
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk = psutil.disk_io_counters(perdisk=False)
        net = psutil.net_io_counters(pernic=False)
        return SystemReading(
            cores=cores,
            memory_percent=memory.percent,
            memory_used_bytes=memory.total - memory.available,
            swap_percent=swap.percent,
            disk_read_bytes=disk.read_bytes if disk else 0,
            disk_write_bytes=disk.write_bytes if disk else 0,
            net_sent_bytes=net.bytes_sent,
            net_recv_bytes=net.bytes_recv,
            load=os.getloadavg(),
            processes=self._processes(),
        )

    def _processes(self) -> tuple[ProcessReading, ...]:
        if (
            len(self._found) < len(self._ports) + 1
            and time.monotonic() - self._last_search >= self._rediscover
        ):
            self._discover()
        readings = []
        for name, proc in list(self._found.items()):
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    readings.append(
                        ProcessReading(
                            name, proc.pid, proc.memory_info().rss, proc.num_fds(), cpu.user + cpu.system
                        )
                    )
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                del self._found[name]
                self._last_search = -self._rediscover  # look for its successor at the next sampling
        return tuple(sorted(readings, key=lambda r: r.name))

    def _discover(self) -> None:
        self._last_search = time.monotonic()
        missing = {port: name for name, port in self._ports.items() if name not in self._found}
        if not missing:
            return
        try:
            parent = psutil.Process().parent()
            candidates = parent.children() if parent is not None else []
        except psutil.Error:
            return
        for candidate in candidates:
            try:
                if not candidate.is_running() or candidate.status() == psutil.STATUS_ZOMBIE:
                    continue
                for conn in candidate.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in missing:
                        name = missing.pop(conn.laddr.port)
                        self._found[name] = candidate
                        log.info("found suite process %s: pid %d", name, candidate.pid)
                        break
            except psutil.Error:
                continue
