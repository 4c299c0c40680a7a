"""Path templates (google.api.http grammar) and route matching order."""

from __future__ import annotations

import pytest

from gateway.auth import READ_ONLY_RPCS, Scope, scope_for
from gateway.pathtemplate import PathTemplate, TemplateError
from gateway.routes import MethodNotAllowed, build_routes, suite_services


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/a/{x}", "/v1/a/b", {"x": "b"}),
        ("/v1/a/{x}", "/v1/a/b/c", None),
        ("/v1/a/{x}", "/v1/a/b%2Fc", {"x": "b/c"}),
        ("/v1/a/{x}", "/v1/a/caf%C3%A9", {"x": "café"}),
        ("/v1/{x.y.z}/t", "/v1/q/t", {"x.y.z": "q"}),
        ("/v1/{name=shelves/*}", "/v1/shelves/s1", {"name": "shelves/s1"}),
        ("/v1/{name=shelves/*}", "/v1/books/s1", None),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/s/books/a/b/c", {"name": "shelves/s/books/a/b/c"}),
        ("/v1/f/{path=**}", "/v1/f/a/b/c.jpg", {"path": "a/b/c.jpg"}),
        ("/v1/f/{path=**}", "/v1/f/", None),
        ("/v1/f/{path=**}:probe", "/v1/f/a/b:probe", {"path": "a/b"}),
        ("/v1/b/{id}:watch", "/v1/b/7:watch", {"id": "7"}),
        ("/v1/b/{id}:watch", "/v1/b/7", None),
        ("/v1/*/x", "/v1/anything/x", {}),
        ("/v1/**", "/v1/a/b", {}),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert PathTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(
    "template",
    ["v1/a", "/v1/{x", "/v1/{x=a/{y}}", "/v1/{}", "/v1/{x}/{x}", "/v1/a:", "/v1/{1x}", "/v1//a"],
)
def test_bad_templates_are_refused_with_the_template_named(template: str) -> None:
    with pytest.raises(TemplateError, match="path template"):
        PathTemplate.parse(template)


def test_openapi_path_drops_patterns() -> None:
    assert PathTemplate.parse("/v1/{name=shelves/*}/b/{p=**}:x").openapi_path() == "/v1/{name}/b/{p}:x"


def test_suite_routes_prefer_verbs_and_report_405() -> None:
    table = build_routes(suite_services())
    found = table.match("GET", "/v1/batches/b1:watch")
    assert found is not None
    assert found.route.method.name == "WatchBatch"
    assert found.path_params == {"batch_id": "b1"}
    found = table.match("GET", "/v1/batches/b1")
    assert found is not None
    assert found.route.method.name == "GetBatch"
    found = table.match("GET", "/v1/monitor/metrics:current")
    assert found is not None
    assert found.route.method.name == "GetCurrentMetrics"
    with pytest.raises(MethodNotAllowed) as error:
        table.match("POST", "/v1/batches/b1")
    assert error.value.allowed == ("GET",)
    assert table.match("GET", "/v2/nothing") is None


def test_scopes_follow_the_method_and_the_read_only_list() -> None:
    assert scope_for("GET", "x.Y.Z") is Scope.READ
    assert scope_for("DELETE", "mediasuite.cache.v1.CacheService.Delete") is Scope.ADMIN
    assert scope_for("PUT", "mediasuite.cache.v1.CacheService.Set") is Scope.ADMIN
    assert scope_for("POST", "mediasuite.batch.v1.BatchService.StartBatch") is Scope.ADMIN
    assert scope_for("POST", "mediasuite.batch.v1.CatalogService.QueryItems") is Scope.READ
    assert scope_for("POST", "mediasuite.processing.v1.ProcessingService.Thumbnail") is Scope.READ
    # every name in the list is a real RPC
    methods = {m.full_name for u in suite_services() for m in u.service.methods}
    assert methods >= READ_ONLY_RPCS
    assert Scope.ADMIN.allows(Scope.READ)
    assert not Scope.READ.allows(Scope.ADMIN)
