"""Start real mediasuite processes for tests: free ports, readiness over grpc.health.v1, clean stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.suite import PROCESSES

BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"  # an absolute path for subprocess (ruff S607)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_status(address: str, service: str = "", timeout: float = 1.0) -> str:
    """The grpc.health.v1 status name at address, or the error code name."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@dataclass
class Running:
    """A process started by a test."""

    popen: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def log(self) -> str:
        """Everything it logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal it and wait for its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout)


def wait_serving(running: Running, timeout: float = 30.0, service: str = "") -> None:
    """Wait until the process reports SERVING; fail with its log when it exits or times out."""
    deadline = time.monotonic() + timeout
    status = "not checked"
    while time.monotonic() < deadline:
        if running.popen.poll() is not None:
            raise AssertionError(f"process exited with {running.popen.returncode}:\n{running.log()}")
        status = health_status(running.address, service, timeout=0.5)
        if status == "SERVING":
            return
        time.sleep(0.05)
    raise AssertionError(f"not SERVING after {timeout}s (last: {status}):\n{running.log()}")


def spawn(command: list[str], env: Mapping[str, str], log_path: Path, address: str) -> Running:
    """Start a command with its output in log_path (not waiting for readiness)."""
    log_file = log_path.open("wb")
    popen = subprocess.Popen(command, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    return Running(popen, address, log_path)


def base_env(**overrides: str) -> dict[str, str]:
    """The test's environment for a child: ours, minus telemetry exporters, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(overrides)
    return env


def suite_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment for ``mediasuite up`` on free loopback ports: each process listens on its own
    (and the others call it there), the gateway and monitor HTTP ports too, its state in ``state_dir``."""
    env = base_env(
        MEDIASUITE_STATE_DIR=str(state_dir),
        GATEWAY_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        MONITOR_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        **overrides,
    )
    for proc in PROCESSES:
        env[proc.listen_env] = env[proc.addr_env] = f"127.0.0.1:{free_port()}"
    return env


def start_suite(env: Mapping[str, str], out: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``mediasuite up *args`` with its output in ``out`` (not waiting for it)."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            [str(BIN / "mediasuite"), "up", *args], env=dict(env), stdout=sink, stderr=subprocess.STDOUT
        )


@contextlib.contextmanager
def service_process(name: str, tmp_path: Path, **env: str) -> Iterator[Running]:
    """Run ``mediasuite-<name>`` on a free port until the block ends."""
    address = f"127.0.0.1:{free_port()}"
    overrides = {f"{name.upper()}_LISTEN": address, **env}
    if name == "gateway":
        overrides.setdefault("GATEWAY_HTTP_LISTEN", f"127.0.0.1:{free_port()}")
    if name == "monitor":
        overrides.setdefault("MONITOR_HTTP_LISTEN", f"127.0.0.1:{free_port()}")
    running = spawn(
        [str(BIN / f"mediasuite-{name}")], base_env(**overrides), tmp_path / f"{name}.log", address
    )
    try:
        wait_serving(running)
        yield running
    finally:
        if running.popen.poll() is None:
            running.popen.kill()
            running.popen.wait()
