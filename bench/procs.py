"""Start a benchmark server in its own process and wait until it answers health checks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import grpc

__all__ = ["free_port", "server_process"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(
    args: list[str], address: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python args...`` until the block ends; ready once a channel to ``address`` connects."""
    popen = subprocess.Popen([sys.executable, *args], env=None if env is None else dict(env))
    try:
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(address) as channel:
            while True:
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    break
                except grpc.FutureTimeoutError:
                    if popen.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"benchmark server {args} did not start") from None
        yield popen
    finally:
        popen.terminate()
        popen.wait(10)
