"""``mediasuite up`` starts all five processes, ``mediactl health`` sees them serving, Ctrl-C stops
them all, and a process that dies is reported and stops the suite instead of being restarted."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from services.runtime.suite import PROCESSES
from tests.support.processes import BIN, base_env, free_port


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    env = base_env(
        MEDIASUITE_STATE_DIR=str(tmp_path / "state"),
        GATEWAY_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        MONITOR_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
    )
    for proc in PROCESSES:
        address = f"127.0.0.1:{free_port()}"
        env[proc.listen_env] = address
        env[proc.addr_env] = address
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        popen = subprocess.Popen(
            [str(BIN / "mediasuite"), "up"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    yield popen, env, out
    if popen.poll() is None:
        popen.kill()
        popen.wait()
    for child in psutil.Process().children(recursive=True):
        child.kill()


def _wait_healthy(
    env: dict[str, str], popen: subprocess.Popen[bytes], out: Path
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert popen.poll() is None, out.read_text()
        result = subprocess.run(
            [str(BIN / "mediactl"), "health", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode == 0:
            return result
        time.sleep(0.3)
    raise AssertionError(f"suite not healthy in time:\n{out.read_text()}")


def test_up_then_health_then_ctrl_c(suite: tuple[subprocess.Popen[bytes], dict[str, str], Path]) -> None:
    popen, env, out = suite
    result = _wait_healthy(env, popen, out)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["process"] for r in rows} == {p.name for p in PROCESSES}
    assert all(r["status"] == "SERVING" for r in rows)
    children = psutil.Process(popen.pid).children()
    assert len(children) == 5
    popen.send_signal(signal.SIGINT)
    assert popen.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    text = out.read_text()
    assert "mediasuite is up" in text
    for proc in PROCESSES:
        assert env[proc.addr_env] in text
    assert "stopped" in text


def test_a_process_that_dies_is_reported_not_restarted(
    suite: tuple[subprocess.Popen[bytes], dict[str, str], Path],
) -> None:
    popen, env, out = suite
    _wait_healthy(env, popen, out)
    children = {psutil.Process(c.pid).cmdline()[-1]: c for c in psutil.Process(popen.pid).children()}
    children["services.cache"].kill()
    assert popen.wait(timeout=60) == 1
    text = out.read_text()
    assert "cache exited unexpectedly" in text
    remaining = [c for c in children.values() if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not remaining, "the other processes were stopped"
    failed = subprocess.run(
        [str(BIN / "mediactl"), "health"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert failed.returncode == 1
    assert "not serving: cache, processing, batch, monitor, gateway" in failed.stderr
