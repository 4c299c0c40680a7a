"""Real Redis for tests: the shared server on 127.0.0.1:6379 under a private key prefix, or a
private redis-server on a free port (for fault tests that stop it).

Tests never flush what they do not own: with the shared server they delete only keys under their
own prefix.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.processes import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"


def unique_prefix(label: str = "test") -> str:
    """A key prefix no other test (or test run) uses."""
    return f"mstest:{label}:{uuid.uuid4().hex[:10]}:"


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under prefix (SCAN, never KEYS); returns how many."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


@dataclass
class PrivateRedis:
    """A redis-server owned by one test: it may be stopped and started again on the same port."""

    port: int
    directory: Path
    popen: subprocess.Popen[bytes] | None = None
    persistent: bool = False  # append-only file fsynced on every write: a SIGKILL loses nothing

    @property
    def url(self) -> str:
        """redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt install redis-server)")
        self.popen = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash would."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def restart(self) -> None:
        """Kill the server (SIGKILL) and start it again on the same port. From async code call it
        in a thread (``asyncio.to_thread``), so the event loop runs meanwhile, as it does while a
        real Redis restarts."""
        self.kill()
        self.start()


@contextlib.contextmanager
def private_redis(directory: Path, *, persistent: bool = False) -> Iterator[PrivateRedis]:
    """A private redis-server on a free port for the duration of the block (``persistent``: what it
    acknowledged survives a kill and a restart, as with the Kubernetes Redis)."""
    server = PrivateRedis(free_port(), directory, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()
