"""The worker pool that runs CPU work off the event loop: one worker per core, a bounded queue, a time
limit per operation, and a worker that dies or overruns replaced while its call fails cleanly.

Processes (the default) isolate the service from its inputs: a decoder that crashes, hangs or
balloons takes one worker with it, which is killed and replaced, and an address-space limit caps
what one operation can take. Threads share the service's memory and cannot be stopped; they are
kept for measurement (see the README: processes vs threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from opentelemetry import metrics, trace

from services.processing.config import PoolSettings
from services.processing.limits import LIMIT_ENV
from services.runtime.errors import (
    Code,
    DeadlineExceeded,
    FieldViolation,
    LimitExceeded,
    MediasuiteError,
    Unavailable,
)

__all__ = ["PoolStats", "RemoteError", "WorkerLost", "WorkerPool"]

log = logging.getLogger("mediasuite.processing.pool")

# Imported once by the fork server, so a new (or recycled) worker starts in milliseconds: the engine,
# and the service module the console script imports. Every worker re-runs the main script, as
# multiprocessing does; with its imports already loaded that costs nothing, where importing the
# service (grpc, OpenTelemetry) in each worker took about 0.2 s of CPU per start. (Python 3.11's
# "__main__" preload does not reach the script: the fork server is not told its path.)
PRELOAD = ["services.processing.engine.tasks", "services.processing.server"]
_PAGE = os.sysconf("SC_PAGE_SIZE")
_START_TIMEOUT = 60.0

Reply = tuple[str, Any]


class WorkerLost(MediasuiteError):
    """The worker running the call died (a crash in a decoder, or killed); it has been replaced."""

    code = Code.ABORTED


class RemoteError(MediasuiteError):
    """A domain error raised in a worker, carried back with its code and details."""

    def __init__(
        self,
        code: str,
        message: str,
        violations: list[tuple[str, str]],
        reason: str,
        metadata: dict[str, str],
    ) -> None:
        super().__init__(
            message,
            violations=[FieldViolation(f, d) for f, d in violations],
            reason=reason,
            metadata=metadata,
        )
        self.code = Code[code]


class WorkerCrash(RuntimeError):
    """An unexpected exception inside a worker (a bug): INTERNAL, with the worker's traceback logged."""


def _error_reply(error: MediasuiteError) -> Reply:
    violations = [(v.field, v.description) for v in error.violations]
    return ("error", (error.code.name, error.message, violations, error.reason, error.metadata))


def _execute(func: Callable[..., Any], args: tuple[Any, ...], memory_limit: int) -> Reply:
    try:
        return ("ok", func(*args))
    except MediasuiteError as error:
        return _error_reply(error)
    except MemoryError:
        return _error_reply(
            LimitExceeded(
                "worker_memory_bytes",
                memory_limit,
                env=LIMIT_ENV["worker_memory_bytes"],
                what="memory needed by this operation",
            )
        )
    except Exception as error:  # a bug: reported to the parent, which logs it under an id
        return ("crash", (f"{type(error).__name__}: {error}", traceback.format_exc()))


def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    try:
        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[1]) * _PAGE
    except OSError:
        current = 0
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker_main(conn: Connection, memory_limit: int) -> None:
    """A worker process: run calls from the pipe until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        func, args = message
        reply = _execute(func, args, memory_limit)
        try:
            conn.send((reply, _rss()))
        except Exception as error:  # e.g. an unpicklable result: still answer
            conn.send((("crash", (f"cannot send the result: {error}", "")), _rss()))


class _Worker(Protocol):
    tasks: int

    @property
    def pid(self) -> int: ...

    def call(
        self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float
    ) -> tuple[Reply, tuple[int, int]]: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


class _ProcessWorker:
    """One worker process and the pipe to it. Calls come from one thread at a time; ``stop`` may
    come from another while a call runs, so replacing the process and stopping it take a lock, and
    a stopped worker is never replaced."""

    def __init__(self, context: Any, memory_limit: int) -> None:
        self._context = context
        self._memory_limit = memory_limit
        self.tasks = 0
        self._lock = threading.Lock()
        self._stopped = False
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_worker_main, args=(child, self._memory_limit), daemon=True, name="mediasuite-worker"
        )
        self._process.start()
        child.close()
        self._conn: Connection = parent
        self._ready = False
        self.tasks = 0

    @property
    def pid(self) -> int:
        """Process id of the worker."""
        return int(self._process.pid or 0)

    def _lost(self, what: str) -> WorkerLost:
        self._process.join(1)
        code = self._process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.restart()
        return WorkerLost(
            f"the worker running this operation {what} ({how}) and was replaced; "
            "the media may be hostile or too demanding. Retry once; report it if it happens again",
            reason="WORKER_LOST",
        )

    def call(
        self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float
    ) -> tuple[Reply, tuple[int, int]]:
        """Run ``func(*args)`` in the worker, waiting at most ``timeout`` seconds."""
        if self._stopped:
            raise _shutting_down()
        if not self._process.is_alive():  # died while idle (killed from outside): replace it quietly
            self.restart()
        if not self._ready:  # a fresh worker's start-up does not count against the operation's time
            if not self._conn.poll(_START_TIMEOUT):
                raise self._lost(f"did not start within {_START_TIMEOUT:g}s")
            try:
                self._conn.recv()
            except (EOFError, OSError):
                raise self._lost("died while starting") from None
            self._ready = True
        try:
            self._conn.send((func, args))
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise self._lost("had died") from None
        if not self._conn.poll(timeout):
            self._kill()
            self.restart()
            raise DeadlineExceeded(
                f"the operation ran longer than its time limit of {timeout:g}s and was stopped; "
                f"raise {LIMIT_ENV['operation_timeout_seconds']} or the call's deadline, "
                "or use smaller media",
                reason="OPERATION_TIMEOUT",
                metadata={"limit": "operation_timeout_seconds", "maximum": f"{timeout:g}"},
            )
        try:
            result: tuple[Reply, tuple[int, int]] = self._conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            raise self._lost("died") from None
        self.tasks += 1
        return result

    def _kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)

    def restart(self) -> None:
        """Replace the worker process with a fresh one (not once the worker is stopped)."""
        with self._lock:
            self._kill()
            self._conn.close()
            if not self._stopped:
                self._start()

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not. A call running meanwhile fails WORKER_LOST."""
        with self._lock:
            self._stopped = True
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(2)
            self._kill()
            self._conn.close()


class _ThreadWorker:
    """Runs calls in the calling thread: no isolation, no preemptive time limit (measurement only)."""

    def __init__(self, memory_limit: int) -> None:
        self._memory_limit = memory_limit
        self.tasks = 0

    @property
    def pid(self) -> int:
        """This process: threads have no process of their own."""
        return os.getpid()

    def call(
        self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float
    ) -> tuple[Reply, tuple[int, int]]:
        """Run ``func(*args)`` here."""
        self.tasks += 1
        return _execute(func, args, self._memory_limit), _rss()

    def restart(self) -> None:
        """Nothing to replace."""
        self.tasks = 0

    def stop(self) -> None:
        """Nothing to stop."""


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of the pool."""

    workers: int
    busy: int
    queued: int
    restarts: int
    rejected: int
    completed: int
    peak_rss_bytes: int
    pids: tuple[int, ...]


def _shutting_down() -> Unavailable:
    return Unavailable("the processing service is shutting down: retry (another replica answers)")


class WorkerPool:
    """Runs functions in workers; callers beyond the workers wait in a bounded queue."""

    def __init__(self, settings: PoolSettings, meter: metrics.Meter | None = None) -> None:
        self.settings = settings
        self._workers: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._threads = ThreadPoolExecutor(settings.workers, thread_name_prefix="pool")
        self._lock = threading.Lock()
        self._closed = False
        self._busy = 0
        self._queued = 0
        self._restarts = 0
        self._rejected = 0
        self._completed = 0
        self._peak_rss = 0
        meter = meter or metrics.NoOpMeterProvider().get_meter("noop")
        self._m_busy = meter.create_up_down_counter(
            "processing.pool.busy", unit="{worker}", description="Workers running an operation"
        )
        self._m_queued = meter.create_up_down_counter(
            "processing.pool.queued", unit="{operation}", description="Operations waiting for a worker"
        )
        self._m_restarts = meter.create_counter(
            "processing.pool.worker_restarts", unit="{worker}", description="Workers replaced, by reason"
        )
        self._m_rejected = meter.create_counter(
            "processing.pool.rejected", unit="{operation}", description="Operations refused: queue full"
        )
        self._m_wait = meter.create_histogram(
            "processing.pool.queue_wait", unit="ms", description="Time operations waited for a worker"
        )
        meter.create_observable_gauge(
            "processing.pool.workers",
            callbacks=[lambda _options: [metrics.Observation(len(self._workers), {"mode": settings.mode})]],
            unit="{worker}",
            description="Workers in the pool",
        )

    async def start(self) -> None:
        """Start the workers (processes start from a preloaded fork server, so replacements are quick)."""
        await asyncio.to_thread(self._start_workers)
        for worker in self._workers:
            self._idle.put_nowait(worker)
        log.info(
            "worker pool: %d %s worker(s), queue %d",
            self.settings.workers,
            self.settings.mode,
            self.settings.queue_size,
            extra={"fields": {"workers": self.settings.workers, "mode": self.settings.mode}},
        )

    def _start_workers(self) -> None:
        if self.settings.mode == "thread":
            self._workers = [_ThreadWorker(0) for _ in range(self.settings.workers)]
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._workers = [
            _ProcessWorker(context, self.settings.worker_memory_bytes) for _ in range(self.settings.workers)
        ]

    async def close(self) -> None:
        """Stop every worker; calls made from now on are refused UNAVAILABLE."""
        self._closed = True
        workers, self._workers = self._workers, []
        for worker in workers:
            await asyncio.to_thread(worker.stop)
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def capacity(self) -> int:
        """Operations that run at once (one per worker)."""
        return self.settings.workers

    def stats(self) -> PoolStats:
        """Counters and the worker pids, for tests, capabilities and metrics."""
        return PoolStats(
            len(self._workers),
            self._busy,
            self._queued,
            self._restarts,
            self._rejected,
            self._completed,
            self._peak_rss,
            tuple(w.pid for w in self._workers),
        )

    async def run(self, func: Callable[..., Any], *args: Any, time_limit: float) -> Any:
        """``func(*args)`` in a worker within ``time_limit`` s; RESOURCE_EXHAUSTED when the queue is full."""
        if self._closed:
            raise _shutting_down()
        if self._idle.empty() and self._queued >= self.settings.queue_size:
            self._rejected += 1
            self._m_rejected.add(1)
            raise LimitExceeded(
                "queue_size",
                self.settings.queue_size,
                self._queued + 1,
                env=LIMIT_ENV["queue_size"],
                what="operations waiting for a worker",
            )
        waited = time.perf_counter()
        self._queued += 1
        self._m_queued.add(1)
        try:
            worker = await self._idle.get()
        finally:
            self._queued -= 1
            self._m_queued.add(-1)
        if self._closed or worker not in self._workers:  # closed while this call waited
            raise _shutting_down()
        wait_ms = (time.perf_counter() - waited) * 1000
        self._m_wait.record(wait_ms)
        # On the caller's span when tracing (processing.run <task>): how long it queued for a worker.
        trace.get_current_span().set_attribute("processing.pool.queue_wait_ms", round(wait_ms, 3))
        self._busy += 1
        self._m_busy.add(1)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, self._call, worker, func, args, time_limit)
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._release(worker)
            else:  # the caller went away: the worker is free once its operation ends
                future.add_done_callback(lambda done: self._release(worker, done))

    def _release(self, worker: _Worker, done: asyncio.Future[Any] | None = None) -> None:
        if done is not None and not done.cancelled():
            done.exception()  # retrieved: nobody else will
        self._busy -= 1
        self._m_busy.add(-1)
        if worker in self._workers:
            self._idle.put_nowait(worker)

    def _restarted(self, reason: str) -> None:
        with self._lock:
            self._restarts += 1
        self._m_restarts.add(1, {"reason": reason})

    def _call(self, worker: _Worker, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        try:
            (status, payload), (rss, peak) = worker.call(func, args, timeout)
        except DeadlineExceeded:
            self._restarted("timeout")
            log.warning("a worker overran the %.3gs time limit: killed and replaced", timeout)
            raise
        except WorkerLost:
            self._restarted("died")
            log.warning("a worker died during an operation and was replaced")
            raise
        with self._lock:
            self._completed += 1
            self._peak_rss = max(self._peak_rss, peak)
        settings = self.settings
        if settings.mode == "process" and (
            (settings.worker_max_tasks and worker.tasks >= settings.worker_max_tasks)
            or (settings.worker_recycle_rss_bytes and rss > settings.worker_recycle_rss_bytes)
        ):
            worker.restart()
            self._restarted("recycled")
        if status == "ok":
            return payload
        if status == "error":
            raise RemoteError(*payload)
        summary, trace = payload
        log.error("operation failed in a worker: %s\n%s", summary, trace)
        raise WorkerCrash(summary)
