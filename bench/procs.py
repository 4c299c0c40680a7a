"""Start a benchmark server, or one of the suite's services, in its own process and wait until it
is ready."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["free_port", "pinned", "server_process", "suite_process"]

BIN = Path(sys.executable).parent


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


def pinned(cpus: set[int] | None) -> list[str]:
    """A command prefix that runs the command on ``cpus`` only (none: anywhere)."""
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))] if cpus else []


def _wait_serving(address: str, popen: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{log.name} exited: {log.read_text()[-2000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{log.name} did not become ready")


@contextlib.contextmanager
def suite_process(
    name: str, log: Path, env: Mapping[str, str], cpus: set[int] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``mediasuite-<name>`` on a free loopback port until the block ends; yields its address
    and process once its health check answers SERVING.

    Its environment is this one without ``OTEL_*`` (no telemetry export skews the figures), with
    ``LOG_LEVEL=warning`` and ``env`` on top; its output goes to ``log``; ``cpus`` pins it.
    """
    address = f"127.0.0.1:{free_port()}"
    full = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full.update({f"{name.upper()}_LISTEN": address, "LOG_LEVEL": "warning", **env})
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*pinned(cpus), str(BIN / f"mediasuite-{name}")], env=full, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_serving(address, popen, log)
        yield address, popen
    finally:
        popen.terminate()
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
