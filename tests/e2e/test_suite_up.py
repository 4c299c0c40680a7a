"""``mediasuite up`` starts all five processes, ``mediactl health`` sees them serving, Ctrl-C stops
them all, a process that dies is reported and stops the suite instead of being restarted, and the
processes are wired to each other (gateway -> processing -> cache, one media library)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from PIL import Image

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from services.runtime.suite import PROCESSES
from tests.support.media import photo, save
from tests.support.processes import BIN, start_suite, suite_env


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    # The sample library has tests of its own (tests/e2e/test_docs.py).
    env = suite_env(tmp_path / "state", MEDIASUITE_SAMPLE="off")
    out = tmp_path / "up.out"
    popen = start_suite(env, out)
    yield popen, env, out
    # The suite's processes are mediasuite's children in sessions of their own: found before it
    # goes (killed first, they would be orphans no one stops), stopped by it when it can.
    descendants = psutil.Process(popen.pid).children(recursive=True) if popen.poll() is None else []
    if popen.poll() is None:
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(60)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    for child in [*descendants, *psutil.Process().children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
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
    deadline = time.monotonic() + 30  # the banner follows the last readiness check
    while "Stop: Ctrl-C" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
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


def _http(url: str, key: str, body: object | None = None) -> dict[str, Any]:
    reply = httpx.request(
        "GET" if body is None else "POST",
        url,
        content=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_the_suite_is_wired_together(suite: tuple[subprocess.Popen[bytes], dict[str, str], Path]) -> None:
    """A thumbnail of a file in the media library, asked of the gateway, is made by processing and
    cached; asked again, it comes from the cache (GetStats counts the hit); the cache checks the
    entry's source in the same library processing read it from."""
    popen, env, out = suite
    _wait_healthy(env, popen, out)
    state = Path(env["MEDIASUITE_STATE_DIR"])
    media = state / "media"
    deadline = time.monotonic() + 30  # the banner follows the last readiness check
    while "Stop: Ctrl-C" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"Media library: {media}" in out.read_text()
    assert "Sample library: off (MEDIASUITE_SAMPLE=off)" in out.read_text()
    assert not any(media.iterdir()), "no sample when it is turned off"
    (key,) = re.findall(r"export MEDIASUITE_API_KEY=(msk_\S+)", out.read_text())
    source = media / "photos" / "a.jpg"
    source.parent.mkdir(parents=True)
    source.write_bytes(save(photo(640, 480), "JPEG", quality=90))

    gateway = f"http://{env['GATEWAY_HTTP_LISTEN']}/v1/processing:thumbnail"

    def thumbnail(output_mode: str) -> dict[str, Any]:
        encode = {"format": "IMAGE_FORMAT_PNG", "outputMode": output_mode}
        body = {"media": {"path": "photos/a.jpg"}, "size": {"width": 64}, "encode": encode}
        return _http(gateway, key, body)

    first = thumbnail("OUTPUT_MODE_STORE")
    assert first["operation"]["cached"] is False
    stored = state / "derived" / first["output"]["storedPath"]
    with Image.open(stored) as image:
        assert image.size == (64, 48), "made by processing, stored under STATE_DIR/derived"
    second = thumbnail("OUTPUT_MODE_INLINE")  # inline: not found in the derived store, only in the cache
    assert second["operation"]["cached"] is True
    assert Image.open(io.BytesIO(base64.b64decode(second["output"]["inline"]))).size == (64, 48)

    with grpc.insecure_channel(env["CACHE_ADDR"]) as channel:
        cache = cache_service_pb2_grpc.CacheServiceStub(channel)
        stats = cache.GetStats(cache_service_pb2.GetStatsRequest(), timeout=10)
        (thumbnails,) = [n for n in stats.namespaces if n.namespace == "thumbnail"]
        assert (thumbnails.sets, thumbnails.hits, thumbnails.misses) == (1, 1, 1)

        # The entry names its source relative to the library; the cache finds the file under its
        # own root (CACHE_MEDIA_ROOT) unchanged, then changed.
        request = cache_service_pb2.GetRequest(
            namespace="thumbnail", key=f"thumbnail/{first['output']['contentKey']}", verify_source=True
        )
        assert cache.Get(request, timeout=10).found
        source.write_bytes(save(photo(640, 480, seed=2), "JPEG", quality=90))
        changed = cache.Get(request, timeout=10)
        assert not changed.found
        assert changed.miss_reason == cache_service_pb2.MISS_REASON_STALE
