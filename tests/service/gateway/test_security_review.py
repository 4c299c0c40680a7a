"""The gateway's security review, as tests: every route that changes state needs the admin scope
(the whole route table, checked over HTTP), keys are compared in constant time, callers are rate
limited per key (429 with Retry-After), and no page route lists a directory or escapes it."""

from __future__ import annotations

import hmac
import re
from typing import Any

import httpx
import pytest

from gateway.auth import READ_ONLY_RPCS, ApiKey, KeyStore, Scope, hash_key, redact
from gateway.ratelimit import RateLimiter
from gateway.routes import Route, build_routes, suite_services
from tests.support.gateway import running_gateway

READ_KEY = "msk_read-key-for-review-0123456789abcdef"
ADMIN_KEY = "msk_admin-key-for-review-0123456789abcdef"
KEYS = f"viewer:read:{hash_key(READ_KEY)},ops:admin:{hash_key(ADMIN_KEY)}"

# RPCs whose name says they change state. A new RPC named like these must need admin; a new RPC
# that is not a read must be added to neither READ_ONLY_RPCS nor a GET route.
_MUTATING_VERB = re.compile(
    r"^(Set|Delete|Invalidate|Warm|Start|Submit|Cancel|Purge|Release|Create|Update|Put|Remove|Write|Import|Ack)"
)
# Reviewed: each read-scope route that is not a GET, and why it changes nothing a caller owns.
_REVIEWED_READS = {
    "mediasuite.cache.v1.CacheService.GetMany": "reads many keys; POST only for the body",
    "mediasuite.batch.v1.CatalogService.QueryItems": "a query; POST only for the body",
    **{
        name: "processing reads media and returns or stores content-addressed outputs; never changes a source"
        for name in READ_ONLY_RPCS
        if name.startswith("mediasuite.processing.v1.")
    },
}


def _routes() -> list[Route]:
    return list(build_routes(suite_services()).routes)


def _path(route: Route) -> str:
    """A concrete path for a route template: every variable becomes a harmless value."""
    return re.sub(r"\{[^}]+\}", "x1", route.template.text)


def test_every_route_that_changes_state_needs_admin() -> None:
    routes = _routes()
    assert len(routes) >= 40
    for route in routes:
        rpc = route.method.full_name
        name = route.method.name
        if _MUTATING_VERB.match(name):
            assert route.scope is Scope.ADMIN, (
                f"{route.http_method} {route.template.text} ({rpc}) changes state"
            )
        if route.scope is Scope.READ and route.http_method != "GET":
            assert rpc in _REVIEWED_READS, f"{route.http_method} {route.template.text} ({rpc}) is read-scope"
        if route.http_method in ("PUT", "PATCH", "DELETE"):
            assert route.scope is Scope.ADMIN, rpc
    assert set(_REVIEWED_READS) == set(READ_ONLY_RPCS), "the review covers the whole read-only list"
    # What the suite's clients and the README call destructive is in the admin set.
    admin = {r.method.full_name for r in routes if r.scope is Scope.ADMIN}
    assert {
        "mediasuite.cache.v1.CacheService.Set",
        "mediasuite.cache.v1.CacheService.Delete",
        "mediasuite.cache.v1.CacheService.DeleteMany",
        "mediasuite.cache.v1.CacheService.SetMany",
        "mediasuite.cache.v1.CacheService.Invalidate",
        "mediasuite.batch.v1.BatchService.StartBatch",
        "mediasuite.batch.v1.BatchService.SubmitBatch",
        "mediasuite.batch.v1.BatchService.CancelBatch",
    } <= admin


async def test_over_http_no_key_is_401_everywhere_and_a_read_key_is_403_on_every_admin_route() -> None:
    # Upstreams point at a closed port: authorization is decided before any call is made.
    closed = {p: "127.0.0.1:9" for p in ("cache", "processing", "batch", "monitor")}
    async with (
        running_gateway(closed, GATEWAY_API_KEYS=KEYS, GATEWAY_RATE_LIMIT="0") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        checked = 0
        for route in gateway.table.routes:
            path = _path(route)
            body: Any = {} if route.body else None
            reply = await client.request(route.http_method, path, json=body)
            assert reply.status_code == 401, (route.http_method, path, reply.text)
            read = await client.request(
                route.http_method, path, json=body, headers={"authorization": f"Bearer {READ_KEY}"}
            )
            if route.scope is Scope.ADMIN:
                assert read.status_code == 403, (route.http_method, path, read.text)
                assert "needs the admin scope" in read.json()["message"]
            else:
                assert read.status_code not in (401, 403), (route.http_method, path, read.text)
            checked += 1
    assert checked == len(gateway.table.routes)


def test_keys_are_hashed_then_compared_with_every_stored_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [ApiKey(f"k{i}", Scope.READ, bytes.fromhex(hash_key(f"msk_{i}")[7:])) for i in range(5)]
    store = KeyStore(keys)
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for presented in ("msk_0", "msk_4", "nope", "x" * 10_000):
        compared.clear()
        found = store.authenticate(presented)
        # Every digest is compared, match or not, and always 32 bytes against 32 bytes: the time
        # does not depend on where a match is, on the key's length, or on a common prefix.
        assert compared == [(32, 32)] * 5, presented
        assert (found is not None) == presented.startswith("msk_")


def test_the_token_bucket_allows_bursts_then_says_when_to_retry() -> None:
    now = [100.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0], max_callers=2)
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.take("a").retry_after_seconds == 1
    assert limiter.take("b").allowed, "each caller has its own bucket"
    now[0] += 0.5  # one token back at 2/s
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
    limiter.take("c")
    assert len(limiter) == 2, "buckets are bounded (least recently used dropped)"
    slow = RateLimiter(0.1, 1, clock=lambda: now[0])
    slow.take("a")
    assert slow.take("a").retry_after_seconds == 10
    assert RateLimiter(0, 1).take("a").allowed, "0 turns the limit off"


async def test_rate_limit_per_key_is_429_with_retry_after() -> None:
    closed = {p: "127.0.0.1:9" for p in ("cache", "processing", "batch", "monitor")}
    async with (
        running_gateway(
            closed, GATEWAY_API_KEYS=KEYS, GATEWAY_RATE_LIMIT="0.5", GATEWAY_RATE_BURST="3"
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        read = {"authorization": f"Bearer {READ_KEY}"}
        admin = {"x-api-key": ADMIN_KEY}
        statuses = [(await client.get("/v1/cache/stats", headers=read)).status_code for _ in range(3)]
        assert 429 not in statuses  # the upstream is down (503), but the calls were let through
        limited = await client.get("/v1/cache/stats", headers=read)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) in (1, 2)  # a token is back within 2 s at 0.5/s
        body = limited.json()
        assert body["code"] == 8
        assert "GATEWAY_RATE_LIMIT=0.5/s" in body["message"]
        assert "viewer" in body["message"]
        assert READ_KEY not in limited.text
        # Another key has its own budget; a wrong key is 401, not counted against anyone.
        assert (await client.get("/v1/cache/stats", headers=admin)).status_code != 429
        assert (await client.get("/v1/cache/stats", headers={"x-api-key": "msk_wrong"})).status_code == 401


async def test_without_keys_the_limit_is_per_client_address() -> None:
    closed = {p: "127.0.0.1:9" for p in ("cache", "processing", "batch", "monitor")}
    async with (
        running_gateway(closed, GATEWAY_RATE_LIMIT="1", GATEWAY_RATE_BURST="2") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        statuses = [(await client.get("/v1/cache/stats")).status_code for _ in range(3)]
        assert statuses[-1] == 429
        assert 429 not in statuses[:2]
        assert (await client.get("/healthz")).status_code == 200, "pages are not API calls"


async def test_no_page_route_lists_a_directory_or_escapes_it() -> None:
    closed = {p: "127.0.0.1:9" for p in ("cache", "processing", "batch", "monitor")}
    async with (
        running_gateway(closed) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        for path in ("/", "/docs"):
            page = await client.get(path)
            assert page.status_code == 200
            for header in ("content-security-policy", "x-content-type-options", "x-frame-options"):
                assert header in page.headers, (path, header)
        served = (await client.get("/")).text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', served)
        assert assets, "the dashboard loads its script and style from /static"
        for asset in assets:
            reply = await client.get(asset)
            assert reply.status_code == 200
            assert reply.headers["x-content-type-options"] == "nosniff"
        for path in (
            "/static/%2e%2e%2fapp.py",
            "/static/%252e%252e%252fapp.py",
            "/static/..%5capp.py",
            "/static/%2fetc%2fpasswd",
            "/static//etc/passwd",
            "/static/index.html/",
            "/docs/",
            "/%2e%2e/%2e%2e/etc/passwd",
        ):
            reply = await client.get(path)
            assert reply.status_code in (404, 405, 307), (path, reply.status_code)
            assert "root:" not in reply.text
            assert "import " not in reply.text


def test_redaction_removes_every_form_a_key_takes_in_a_log_line() -> None:
    key = "msk_AbCdEf0123456789-_xyz"
    for line in (
        f"< sec-websocket-protocol: mediasuite.v1, bearer.{key}",
        f"< authorization: Bearer {key}",
        f'{{"x-api-key": "{key}"}}',
        f"presented {key} twice: {key}",
        f"Cookie: session={key}",
    ):
        cleaned = redact(line)
        assert key not in cleaned, line
        assert "AbCdEf" not in cleaned, line
        assert "<redacted>" in cleaned
    assert redact("GET /v1/cache/stats 200") == "GET /v1/cache/stats 200"
