"""The whole suite over mutual TLS: ``mediasuite up --tls DIR`` with certificates from
``mediasuite certs`` (what ``make certs`` runs). A call through the gateway reaches batch,
processing and cache over mTLS; the monitor checks every process and receives their metrics over
mTLS; a client without a certificate, with one from another CA, or with an expired one is refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.cli.certs import Leaf, suite_certs
from tests.support.batch import make_tree
from tests.support.certs import expired_leaf, make_ca, make_leaf
from tests.support.processes import BIN, start_suite, suite_env
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

pytestmark = pytest.mark.slow


def _http(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    reply = httpx.request(method, url, json=body, timeout=30)
    return reply.status_code, reply.json() if reply.content else None


def _eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def _health(address: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = (
        grpc.secure_channel(address, credentials)
        if credentials is not None
        else grpc.insecure_channel(address)
    )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _credentials(leaf: Leaf, ca: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=leaf.key.read_bytes(),
        certificate_chain=leaf.cert.read_bytes(),
    )


@pytest.fixture
def tls_suite(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, Path]]:
    """``mediasuite certs`` then ``mediasuite up --tls``, with a small library and Redis prefixes."""
    certs = tmp_path / "certs"
    made = subprocess.run(
        [str(BIN / "mediasuite"), "certs", "--dir", str(certs), "--days", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    media, derived = tmp_path / "media", tmp_path / "derived"
    make_tree(media, images=6)
    derived.mkdir()
    cache_prefix, batch_prefix = unique_prefix("mtlscache"), unique_prefix("mtlsbatch")
    env = suite_env(
        tmp_path / "state",
        # This test is about mutual TLS between processes; the gateway's HTTP keys have their own tests.
        GATEWAY_AUTH="off",
        MEDIASUITE_SAMPLE="off",
        OTEL_METRIC_EXPORT_INTERVAL="500",
        MONITOR_SAMPLE_INTERVAL="1s",
        REDIS_URL=SHARED_URL,
        CACHE_REDIS_PREFIX=cache_prefix,
        BATCH_KEY_PREFIX=batch_prefix,
        PROCESSING_MEDIA_ROOT=str(media),
        BATCH_MEDIA_ROOT=str(media),
        CACHE_MEDIA_ROOT=str(media),
        PROCESSING_DERIVED_ROOT=str(derived),
        BATCH_DERIVED_ROOT=str(derived),
        PROCESSING_WORKERS="1",
    )
    out = tmp_path / "up.out"
    popen = start_suite(env, out, "--tls", str(certs))
    try:
        _eventually(
            lambda: popen.poll() is not None or "mediasuite is up" in out.read_text(),
            90,
            "mediasuite up --tls",
        )
        assert popen.poll() is None, out.read_text()
        yield env, certs, out
        popen.send_signal(signal.SIGINT)
        assert popen.wait(timeout=60) == 0, out.read_text()
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        for child in psutil.Process().children(recursive=True):
            child.kill()
        delete_prefix(SHARED_URL, cache_prefix)
        delete_prefix(SHARED_URL, batch_prefix)


def test_the_suite_works_end_to_end_over_mtls_and_refuses_clients_it_cannot_verify(
    tls_suite: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    env, certs, out = tls_suite
    assert "gRPC: mutual TLS" in out.read_text()
    http = f"http://{env['GATEWAY_HTTP_LISTEN']}"
    ca = certs / "ca.crt"

    # gateway -> cache
    status, _ = _http(f"{http}/v1/cache/namespaces/thumbnail/entries/k1", "PUT", {"value": "aGVsbG8="})
    assert status == 200
    status, got = _http(f"{http}/v1/cache/namespaces/thumbnail/entries/k1")
    assert (status, got["found"], got["value"]) == (200, True, "aGVsbG8=")
    # gateway -> processing (-> cache for the hash)
    status, probed = _http(
        f"{http}/v1/processing:probe", "POST", {"media": {"path": "library/2020/00/img0000.png"}}
    )
    assert status == 200, probed
    assert (probed["info"]["width"], probed["info"]["format"]) == (40, "PNG")
    # gateway -> batch -> processing -> cache: an import of the library, then a catalog query
    status, started = _http(
        f"{http}/v1/batches",
        "POST",
        {"spec": {"importDirectory": {"directory": "library", "recursive": True}}},
    )
    assert status == 200, started
    batch_id = started["batch"]["id"]

    def finished() -> dict[str, Any] | None:
        _, body = _http(f"{http}/v1/batches/{batch_id}")
        return body["batch"] if body["batch"]["state"] == "BATCH_STATE_SUCCEEDED" else None

    batch = _eventually(finished, 60, "the import over mTLS")
    assert (int(batch["done"]), int(batch["failed"])) == (6, 0)
    status, page = _http(f"{http}/v1/catalog/items:query", "POST", {"pageSize": 50})
    assert status == 200
    assert len(page["items"]) == 6

    # The monitor reaches every process over mTLS (health) and receives their metrics over TLS.
    def healthy() -> dict[str, Any] | None:
        _, body = _http(f"{http}/v1/monitor/health")
        return body if body.get("score") == 100 else None

    health = _eventually(healthy, 60, "a health score of 100")
    assert {c["name"] for c in health["components"]} >= {"cache", "processing", "batch", "gateway"}

    def services_exporting() -> set[str] | None:
        _, body = _http(f"{http}/v1/monitor/metrics:current?prefix=rpc.server.calls")
        found = {s["labels"].get("service") for s in body.get("samples", [])}
        return found if {"cache", "processing", "batch", "gateway"} <= found else None

    _eventually(services_exporting, 60, "OTLP metrics from every service over TLS")

    # Direct gRPC callers: the suite's client certificate is accepted; anything else is refused.
    client = suite_certs(certs)["client"]
    assert _health(env["CACHE_ADDR"], _credentials(client, ca)) == "SERVING"
    stranger = make_leaf(make_ca(tmp_path / "other"), "stranger")
    expired = expired_leaf(ca, "expired")
    for address in (env["CACHE_ADDR"], env["PROCESSING_ADDR"], env["BATCH_ADDR"]):
        assert _health(address, None) == "UNAVAILABLE", "plaintext"
        assert (
            _health(address, grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())) == "UNAVAILABLE"
        )
        assert _health(address, _credentials(stranger, ca)) == "UNAVAILABLE", "another CA"
        assert _health(address, _credentials(expired, ca)) == "UNAVAILABLE", "expired"
    # mediactl with the client certificate sees every process; without it, none.
    mediactl = [str(BIN / "mediactl"), "--tls", str(certs), "health", "--json"]
    checked = subprocess.run(mediactl, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert {json.loads(line)["status"] for line in checked.stdout.splitlines()} == {"SERVING"}
    stats = subprocess.run(
        [str(BIN / "mediactl"), "--tls", str(certs), "cache", "stats", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert stats.returncode == 0, stats.stderr
    plain = subprocess.run(
        [str(BIN / "mediactl"), "--timeout", "2", "health"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode == 1, "without the certificate every process refuses mediactl"
    logs = (Path(env["MEDIASUITE_STATE_DIR"]) / "log").glob("*.log")
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"
        assert "Failed to export" not in text, f"{log.name}: metrics export failed:\n{text[-3000:]}"
