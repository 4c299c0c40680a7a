"""Request building, key handling, configuration checks and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from gateway.auth import KeyFormatError, KeyStore, Scope, hash_key, new_key, parse_key_entries
from gateway.codec import JsonOptions, RequestError, build_request, render
from gateway.config import GatewayConfig
from gateway.openapi import build_openapi
from gateway.protodocs import docs_for
from gateway.routes import build_routes, suite_services
from mediasuite.batch.v1 import catalog_service_pb2
from mediasuite.cache.v1 import cache_service_pb2
from services.runtime.config import ConfigError, Env


def test_build_request_merges_body_query_and_path() -> None:
    message = build_request(
        cache_service_pb2.GetRequest.DESCRIPTOR,
        body_field="",
        path_params={"namespace": "thumbnail", "key": "a/b"},
        query=[("fingerprint.mtimeNs", "123"), ("verify_source", "1")],
        body=b"",
    )
    assert message == cache_service_pb2.GetRequest(
        namespace="thumbnail",
        key="a/b",
        verify_source=True,
        fingerprint=cache_service_pb2.GetRequest().fingerprint.__class__(mtime_ns=123),
    )


def test_path_overrides_the_body() -> None:
    message = build_request(
        cache_service_pb2.SetRequest.DESCRIPTOR,
        body_field="*",
        path_params={"namespace": "n", "key": "from-path"},
        query=[],
        body=b'{"key": "from-body", "contentType": "x"}',
    )
    assert isinstance(message, cache_service_pb2.SetRequest)
    assert message.key == "from-path"
    assert message.content_type == "x"


def _query_items(body: bytes) -> catalog_service_pb2.QueryItemsRequest:
    """A QueryItemsRequest from a JSON body alone (its route: POST with body "*", no path or query)."""
    message = build_request(
        catalog_service_pb2.QueryItemsRequest.DESCRIPTOR, body_field="*", path_params={}, query=[], body=body
    )
    assert isinstance(message, catalog_service_pb2.QueryItemsRequest)
    return message


def test_enum_filters_and_nested_errors() -> None:
    message = _query_items(
        b'{"filter": {"statuses": ["REVIEW_STATUS_APPROVED", 3], "since": "2024-01-01T00:00:00Z"}}'
    )
    assert list(message.filter.statuses) == [2, 3]
    with pytest.raises(RequestError) as error:
        _query_items(b'{"filter": {"minSizeBytes": "12a"}}')
    assert error.value.field == "filter.minSizeBytes"


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_body_is_accepted_or_refused_with_a_field_never_crashes(value: object) -> None:
    import json

    body = json.dumps({"filter": value, "pageSize": value} if isinstance(value, dict) else value).encode()
    try:
        _query_items(body)
    except RequestError as error:
        refused = error
        assert refused.field, refused
        assert refused.description


@pytest.mark.parametrize(
    "body",
    [
        b'{"filter": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"filter": {"tags": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}",
    ],
)
def test_deeply_nested_bodies_are_400_not_a_crash(body: bytes) -> None:
    with pytest.raises(RequestError) as error:
        _query_items(body)
    assert error.value.field.startswith(("body", "filter"))


def test_render_names_and_response_body() -> None:
    reply = cache_service_pb2.GetResponse(found=True, info=cache_service_pb2.EntryInfo(raw_bytes=5))
    assert render(reply, JsonOptions())["info"]["rawBytes"] == "5"
    assert render(reply, JsonOptions(proto_names=True))["info"]["raw_bytes"] == "5"
    assert "missReason" in render(reply, JsonOptions())
    assert "missReason" not in render(reply, JsonOptions(emit_defaults=False))
    assert render(reply, JsonOptions(), "found") is True


def test_keys_are_stored_hashed_and_checked() -> None:
    key = new_key()
    assert key.startswith("msk_")
    assert len(key) > 40
    entries = parse_key_entries(
        f"# ops keys\nops:admin:{hash_key(key)}\n\nci:read:{hash_key('other')}", "test"
    )
    assert [(e.name, e.scope) for e in entries] == [("ops", Scope.ADMIN), ("ci", Scope.READ)]
    store = KeyStore(entries)
    principal = store.authenticate(key)
    assert principal is not None
    assert principal.name == "ops"
    assert principal.scope is Scope.ADMIN
    assert store.authenticate(key + "x") is None
    assert store.authenticate("") is None
    for bad in (
        "ops:admin:" + key,
        "ops:root:" + hash_key(key),
        "ops:admin:sha256:abc",
        f"a:read:{hash_key('1')},a:read:{hash_key('2')}",
    ):
        with pytest.raises(KeyFormatError):
            parse_key_entries(bad, "test")


def test_config_reads_keys_from_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"ops:admin:{hash_key('k1')}\n")
    config = GatewayConfig.from_env(
        Env({"GATEWAY_API_KEYS_FILE": str(path), "GATEWAY_API_KEYS": f"ci:read:{hash_key('k2')}"})
    )
    assert config.auth
    assert {k.name for k in config.keys} == {"ops", "ci"}
    assert not GatewayConfig.from_env(Env({})).auth  # loopback, no keys: open, with a warning at start


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GATEWAY_HTTP_LISTEN": "0.0.0.0:8080"}, "GATEWAY_API_KEYS"),
        ({"GATEWAY_AUTH": "on"}, "GATEWAY_AUTH"),
        ({"GATEWAY_API_KEYS": "ops:admin:plaintext-key"}, "GATEWAY_API_KEYS"),
        ({"GATEWAY_API_KEYS_FILE": "/no/such/file"}, "GATEWAY_API_KEYS_FILE"),
        ({"GATEWAY_FORWARD_HEADERS": "x-a,connection"}, "GATEWAY_FORWARD_HEADERS"),
        ({"GATEWAY_FORWARD_HEADERS": "authorization"}, "GATEWAY_FORWARD_HEADERS"),
        ({"GATEWAY_CORS_ORIGINS": "app.example"}, "GATEWAY_CORS_ORIGINS"),
        ({"GATEWAY_MAX_BODY_BYTES": "12"}, "GATEWAY_MAX_BODY_BYTES"),
        ({"GATEWAY_JSON_NAMES": "kebab"}, "GATEWAY_JSON_NAMES"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as error:
        GatewayConfig.from_env(Env(env))
    assert error.value.variable == variable
    assert "plaintext-key" not in str(error.value), "a key that was pasted by mistake is not echoed"


def test_non_loopback_without_keys_is_allowed_only_when_auth_is_off() -> None:
    config = GatewayConfig.from_env(Env({"GATEWAY_HTTP_LISTEN": "0.0.0.0:8080", "GATEWAY_AUTH": "off"}))
    assert not config.auth


@pytest.mark.parametrize("auth", [True, False])
def test_openapi_document_is_valid(auth: bool) -> None:
    document = build_openapi(build_routes(suite_services()), auth=auth)
    validate(document)
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == len(build_routes(suite_services()).routes)
    assert len({op["operationId"] for op in operations}) == len(operations)
    get = document["paths"]["/v1/cache/namespaces/{namespace}/entries/{key}"]["get"]
    names = [p["name"] for p in get["parameters"]]
    assert names[:2] == ["namespace", "key"]
    assert "fingerprint.sizeBytes" in names
    assert "verifySource" in names
    assert ("security" in get) is auth
    put = document["paths"]["/v1/cache/namespaces/{namespace}/entries/{key}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "value" in body
    assert "key" not in body, "path fields are not part of the body schema"
    assert put["x-mediasuite-scope"] == "admin"


def test_openapi_carries_the_proto_comments() -> None:
    upstreams = suite_services()
    docs = docs_for(u.service for u in upstreams)
    document = build_openapi(build_routes(upstreams), auth=False, docs=docs)
    validate(document)
    get = document["paths"]["/v1/cache/namespaces/{namespace}/entries/{key}"]["get"]
    assert get["description"].startswith("Returns the entry stored under a key.")
    key = next(p for p in get["parameters"] if p["name"] == "key")
    assert key["description"].startswith("Key of the entry")
    size = next(p for p in get["parameters"] if p["name"] == "fingerprint.sizeBytes")
    assert size["description"] == "Size of the source file in bytes."
    response = document["components"]["schemas"]["mediasuite.cache.v1.GetResponse"]
    assert response["properties"]["found"]["description"] == "Whether a fresh value was found."
    assert response["properties"]["info"]["$ref"].endswith("EntryInfo")
    tags = {t["name"]: t.get("description", "") for t in document["tags"]}
    assert "Errors:" in tags["mediasuite.batch.v1.BatchService"]
    assert "\n\nErrors:" in tags["mediasuite.batch.v1.BatchService"], "paragraphs are kept"
