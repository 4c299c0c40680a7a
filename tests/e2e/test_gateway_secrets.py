"""No secret in any log: a real gateway with API keys in front of a real cache, both logging at
debug level, called with good, wrong and under-scoped keys in every way a key can be presented;
then neither log holds a key, nor its digest. A malformed key entry stops the gateway without
echoing it."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.auth import hash_key
from tests.support.processes import BIN, base_env, free_port, service_process

pytestmark = pytest.mark.slow

READ_KEY = "msk_secret-read-key-0f3b9c1e7d5a2468ace"
ADMIN_KEY = "msk_secret-admin-key-9e8d7c6b5a4f3e2d1c"
WRONG_KEY = "msk_secret-wrong-key-1234567890abcdef"


def test_keys_never_reach_a_log(tmp_path: Path) -> None:
    entries = f"viewer:read:{hash_key(READ_KEY)},ops:admin:{hash_key(ADMIN_KEY)}"
    debug = {"LOG_LEVEL": "debug", "LOG_FORMAT": "json"}
    with service_process("cache", tmp_path, **debug) as cache:
        listen = f"127.0.0.1:{free_port()}"
        with service_process(
            "gateway",
            tmp_path,
            CACHE_ADDR=cache.address,
            MONITOR_ADDR="127.0.0.1:9",  # nothing there: the stream below fails, and that is logged
            GATEWAY_HTTP_LISTEN=listen,
            GATEWAY_API_KEYS=entries,
            **debug,
        ) as gateway:
            http = f"http://{listen}"
            with httpx.Client(base_url=http, timeout=10) as client:
                admin = {"authorization": f"Bearer {ADMIN_KEY}"}
                put = client.put(
                    "/v1/cache/namespaces/thumbnail/entries/k", json={"value": "aGk="}, headers=admin
                )
                assert put.status_code == 200
                assert client.get(
                    "/v1/cache/namespaces/thumbnail/entries/k", headers={"x-api-key": READ_KEY}
                ).json()["found"]
                assert (
                    client.delete(
                        "/v1/cache/namespaces/thumbnail/entries/k", headers={"x-api-key": READ_KEY}
                    ).status_code
                    == 403
                )
                assert (
                    client.get(
                        "/v1/cache/stats", headers={"authorization": f"Bearer {WRONG_KEY}"}
                    ).status_code
                    == 401
                )
                assert (
                    client.get("/v1/cache/stats", headers={"authorization": f"Basic {WRONG_KEY}"}).status_code
                    == 401
                )
                # A key in a Grpc-Metadata header is refused, never forwarded.
                refused = client.get(
                    "/v1/cache/stats",
                    headers={"x-api-key": READ_KEY, "grpc-metadata-authorization": ADMIN_KEY},
                )
                assert refused.status_code == 400
                # WebSocket keys travel as a subprotocol: a good one (the upstream is down) and a wrong one.
                ws_url = http.replace("http://", "ws://") + "/v1/monitor/metrics:stream?interval=1s"
                for key in (READ_KEY, WRONG_KEY):
                    with (
                        connect(ws_url, subprotocols=["mediasuite.v1", f"bearer.{key}"]) as socket,  # type: ignore[list-item]
                        contextlib.suppress(ConnectionClosed),
                    ):
                        socket.recv(timeout=10)
        logs = {"gateway": gateway.log(), "cache": cache.log()}
    assert "authentication on: 2 API key(s)" in logs["gateway"]
    for name, text in logs.items():
        assert len(text.splitlines()) > 3, f"{name} logged at debug level"
        for secret in (READ_KEY, ADMIN_KEY, WRONG_KEY, hash_key(READ_KEY)[7:], hash_key(ADMIN_KEY)[7:]):
            assert secret not in text, f"{name}'s log holds a secret"
        assert "msk_secret" not in text


def test_a_malformed_key_entry_is_refused_without_echoing_it(tmp_path: Path) -> None:
    env = base_env(GATEWAY_API_KEYS=f"ops:admin:{ADMIN_KEY}", GATEWAY_HTTP_LISTEN="127.0.0.1:0")
    result = subprocess.run(
        [str(BIN / "mediasuite-gateway"), "--check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "GATEWAY_API_KEYS" in result.stderr
    assert ADMIN_KEY not in result.stderr + result.stdout
    assert "msk_secret" not in result.stderr + result.stdout
