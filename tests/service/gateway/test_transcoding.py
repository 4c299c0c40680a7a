"""HTTP/JSON -> gRPC -> JSON through the real gateway and real gRPC servers on loopback.

Routes come from annotations only: the suite's CacheService (a test servicer behind it) and the
gatewaytest EchoService, whose annotations use nested and multi-segment path variables,
``body: "field"``, ``response_body`` and additional bindings.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from mediasuite.cache.v1 import cache_service_pb2_grpc
from tests.conftest import ServerFactory
from tests.support.gateway import (
    EchoCache,
    EchoState,
    RunningGateway,
    binding,
    echo_binding,
    make,
    running_gateway,
)


@pytest.fixture
async def gateway(grpc_server: ServerFactory) -> AsyncIterator[RunningGateway]:
    bindings = [
        echo_binding(EchoState()),
        binding(
            "mediasuite.cache.v1.CacheService",
            cache_service_pb2_grpc.add_CacheServiceServicer_to_server,
            make(EchoCache),
        ),
    ]
    async with (
        grpc_server(bindings) as server,
        running_gateway({"echo": server.address, "cache": server.address}, echo=True) as running,
    ):
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        yield http


def test_route_table_comes_from_the_annotations(gateway: RunningGateway) -> None:
    lines = gateway.table.describe().splitlines()
    assert (
        "GET    /v1/shelves/{shelf.name}/books/{book.path=**} -> gatewaytest.v1.EchoService.Echo (read)"
        in lines
    )
    assert "GET    /v1/echo/{shelf.name=shelves/*} -> gatewaytest.v1.EchoService.Echo (read)" in lines
    assert (
        "PUT    /v1/shelves/{shelf.name}/book -> gatewaytest.v1.EchoService.Echo (admin) [body=book]" in lines
    )
    assert (
        "GET    /v1/echo/{shelf.name}:labels -> gatewaytest.v1.EchoService.Echo (read) [response_body=labels]"
        in lines
    )
    assert "GET    /v1/count/{n} -> gatewaytest.v1.EchoService.Count (read) [stream]" in lines
    assert (
        "GET    /v1/cache/namespaces/{namespace}/entries/{key} -> mediasuite.cache.v1.CacheService.Get (read)"
        in lines
    )
    cache_entry = "/v1/cache/namespaces/{namespace}/entries/{key} -> mediasuite.cache.v1.CacheService"
    assert f"PUT    {cache_entry}.Set (admin) [body=*]" in lines
    assert f"DELETE {cache_entry}.Delete (admin)" in lines
    # client-streaming and unannotated RPCs get no route
    assert not any("Warm" in line or "GetOrLease" in line for line in lines)


async def test_nested_and_multi_segment_path_variables(client: httpx.AsyncClient) -> None:
    reply = await client.get("/v1/shelves/sci%20fi/books/2024/spring/dune.txt")
    assert reply.status_code == 200, reply.text
    request = reply.json()["request"]
    assert request["shelf"]["name"] == "sci fi"
    assert request["book"]["path"] == "2024/spring/dune.txt"


async def test_variable_with_a_sub_pattern(client: httpx.AsyncClient) -> None:
    reply = await client.get("/v1/echo/shelves/poetry")
    assert reply.status_code == 200, reply.text
    assert reply.json()["request"]["shelf"]["name"] == "shelves/poetry"
    assert (await client.get("/v1/echo/other/poetry")).status_code == 404


# A query parameter for every kind of field (the page size aside: the test spells it both ways).
_QUERY = [
    ("shelf.name", "a"),
    ("shelf.id", "9007199254740993"),  # beyond a double's precision: kept exact
    ("verbose", "true"),
    ("ids", "1"),
    ("ids", "2"),
    ("labels[env]", "prod"),
    ("labels[team]", "media"),
    ("ratio", "0.25"),
    ("blob", base64.urlsafe_b64encode(b"\xfb\xff").decode()),
    ("wait", "1.5s"),
    ("limit", "7"),
    ("kind", "KIND_POEM"),
    ("kinds", "KIND_NOVEL"),
    ("kinds", "2"),
    ("book.published", "2024-05-01T12:00:00Z"),
    ("book.tags", "x"),
]


async def test_query_parameters_fill_the_remaining_fields(client: httpx.AsyncClient) -> None:
    # The JSON name and the proto name mean the same field: both spellings at once are refused ...
    reply = await client.get("/v1/echo", params=[*_QUERY, ("pageSize", "25"), ("page_size", "25")])
    assert reply.status_code == 400
    # ... and either one alone fills it (here the proto name).
    reply = await client.get("/v1/echo", params=[*_QUERY, ("page_size", "25")])
    assert reply.status_code == 200, reply.text
    request = reply.json()["request"]
    assert request["shelf"] == {"name": "a", "id": "9007199254740993"}
    assert request["pageSize"] == 25
    assert request["verbose"] is True
    assert request["ids"] == ["1", "2"]
    assert request["labels"] == {"env": "prod", "team": "media"}
    assert request["ratio"] == 0.25
    assert base64.b64decode(request["blob"]) == b"\xfb\xff"
    assert request["wait"] == "1.500s"
    assert request["limit"] == 7
    assert request["kind"] == "KIND_POEM"
    assert request["kinds"] == ["KIND_NOVEL", "KIND_POEM"]
    assert request["book"]["published"] == "2024-05-01T12:00:00Z"
    assert request["book"]["tags"] == ["x"]


async def test_body_star_and_body_field(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v1/echo:body", json={"shelf": {"name": "s"}, "page_size": 3, "a": "first"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["request"]["shelf"]["name"] == "s"
    assert reply.json()["request"]["pageSize"] == 3
    assert reply.json()["request"]["a"] == "first"

    reply = await client.put(
        "/v1/shelves/classics/book?pageSize=4",
        json={"path": "odyssey.txt", "kind": "KIND_POEM", "tags": ["epic"]},
    )
    assert reply.status_code == 200, reply.text
    request = reply.json()["request"]
    assert request["shelf"]["name"] == "classics"
    assert request["book"] == {"path": "odyssey.txt", "kind": "KIND_POEM", "tags": ["epic"]}
    assert request["pageSize"] == 4


async def test_response_body_returns_one_field(client: httpx.AsyncClient) -> None:
    reply = await client.get("/v1/echo/s1:labels", params={"labels[a]": "1", "labels[b]": "2"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"a": "1", "b": "2"}


async def test_unknown_fields_and_wrong_types_are_400_naming_the_field(client: httpx.AsyncClient) -> None:
    cases: list[tuple[tuple[str, str, dict[str, object]], str]] = [
        (("POST", "/v1/echo:body", dict(json={"shelf": {"nmae": "x"}})), "shelf.nmae"),
        (("POST", "/v1/echo:body", dict(json={"pageSize": "ten"})), "pageSize"),
        (("POST", "/v1/echo:body", dict(json={"pageSize": 2**40})), "pageSize"),
        (("POST", "/v1/echo:body", dict(json={"verbose": "yes"})), "verbose"),
        (("POST", "/v1/echo:body", dict(json={"ratio": "abc"})), "ratio"),
        (("POST", "/v1/echo:body", dict(json={"ratio": True})), "ratio"),
        (("GET", "/v1/echo", dict(params={"ratio": "1e999"})), "ratio"),
        (("POST", "/v1/echo:body", dict(json={"ids": [1, "x"]})), "ids[1]"),
        (("POST", "/v1/echo:body", dict(json={"kind": "KIND_SONG"})), "kind"),
        (("POST", "/v1/echo:body", dict(json={"blob": "not base64!"})), "blob"),
        (("POST", "/v1/echo:body", dict(json={"wait": "soon"})), "wait"),
        (("POST", "/v1/echo:body", dict(json={"book": {"published": "yesterday"}})), "book.published"),
        (("POST", "/v1/echo:body", dict(json={"a": "x", "b": "y"})), "b"),
        (("POST", "/v1/echo:body", dict(json={"labels": {"k": 1}})), "labels[k]"),
        (("POST", "/v1/echo:body", dict(json=[1, 2])), "body"),
        (("POST", "/v1/echo:body", dict(content=b"{not json")), "body"),
        (("POST", "/v1/echo:body?pageSize=1", dict(json={})), "pageSize"),
        (("GET", "/v1/echo", dict(params={"nope": "1"})), "nope"),
        (("GET", "/v1/echo", dict(params={"pageSize": "1.5"})), "pageSize"),
        (("GET", "/v1/echo", dict(params={"verbose": "maybe"})), "verbose"),
        (("GET", "/v1/echo", dict(params={"shelf": "x"})), "shelf"),
        (("GET", "/v1/echo", dict(params={"big": "-1"})), "big"),
        (("GET", "/v1/echo", dict(params={"pageSize": ["1", "2"]})), "pageSize"),
        (("GET", "/v1/echo", dict(content=b'{"a": 1}')), "body"),
        (("GET", "/v1/echo/shelves/x", dict(params={"shelf.name": "y"})), "shelf.name"),
    ]
    for (method, url, options), field in cases:
        reply = await client.request(method, url, **options)  # type: ignore[arg-type]
        assert reply.status_code == 400, (field, reply.text)
        body = reply.json()
        assert body["code"] == 3
        violations = body["details"][0]["fieldViolations"]
        assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert violations[0]["field"] == field, (field, body)
        assert violations[0]["description"]


async def test_cache_routes_map_path_query_and_body(client: httpx.AsyncClient) -> None:
    reply = await client.get(
        "/v1/cache/namespaces/thumbnail/entries/photos%2Fa.jpg",
        params={"fingerprint.path": "photos/a.jpg", "fingerprint.sizeBytes": "1234", "verifySource": "true"},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert base64.b64decode(body["value"]) == b"photos/a.jpg"  # %2F in a one-segment variable is part of it
    assert body["info"]["contentType"] == "thumbnail"
    assert body["info"]["fingerprint"]["path"] == "photos/a.jpg"
    assert body["info"]["fingerprint"]["sizeBytes"] == "1234"
    assert body["missReason"] == "MISS_REASON_UNSPECIFIED"  # defaults are written (grpc-gateway's default)

    reply = await client.put(
        "/v1/cache/namespaces/thumbnail/entries/k1",
        json={"value": base64.b64encode(b"12345").decode(), "ttl": "60s", "contentType": "image/png"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["info"]["rawBytes"] == "5"
    assert reply.json()["info"]["contentType"] == "image/png"

    assert (await client.delete("/v1/cache/namespaces/n/entries/present")).json() == {"deleted": True}
    assert (await client.delete("/v1/cache/namespaces/n/entries/absent")).json() == {"deleted": False}


async def test_service_errors_keep_their_details(client: httpx.AsyncClient) -> None:
    reply = await client.get("/v1/cache/namespaces/missing/entries/k")
    assert reply.status_code == 404
    assert reply.json()["code"] == 5
    assert "known: media_metadata" in reply.json()["message"]

    reply = await client.put("/v1/cache/namespaces/n/entries/k", json={"ttl": "-5s"})
    assert reply.status_code == 400
    detail = reply.json()["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == "ttl"


async def test_unknown_route_404_and_wrong_method_405(client: httpx.AsyncClient) -> None:
    reply = await client.get("/v1/nothing/here")
    assert reply.status_code == 404
    assert reply.json()["code"] == 5
    reply = await client.patch("/v1/cache/namespaces/n/entries/k", json={})
    assert reply.status_code == 405
    assert set(reply.headers["allow"].split(", ")) == {"DELETE", "GET", "PUT"}
    assert reply.json()["code"] == 12
