"""Namespace policies: the defaults, per-call TTL bounds, and configuration from env and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cache.config import CacheConfig
from services.cache.namespaces import DEFAULT_POLICIES, NamespacePolicy, Namespaces
from services.runtime.config import ConfigError, Env
from services.runtime.errors import InvalidArgument, NotFound

HOUR = 3600.0


def test_defaults_are_those_of_the_original_system() -> None:
    ttls = {p.name: p.default_ttl for p in DEFAULT_POLICIES}
    assert ttls == {
        "media_metadata": 24 * HOUR,
        "image_analysis": HOUR,
        "video_analysis": HOUR,
        "thumbnail": 24 * HOUR,
        "format_conversion": 30 * 60,
        "quality_analysis": HOUR,
        "collection_summary": 30 * 60,
        "bulk_operation_result": 15 * 60,
    }
    assert [p.name for p in DEFAULT_POLICIES if p.freshness_checked] == ["media_metadata"]


def test_ttl_default_shorter_and_above_maximum() -> None:
    policy = NamespacePolicy("thumbnail", 60.0, 120.0)
    assert policy.ttl_ms(None) == 60_000
    assert policy.ttl_ms(0.5) == 500
    assert policy.ttl_ms(120.0) == 120_000
    with pytest.raises(InvalidArgument) as above:
        policy.ttl_ms(121.0)
    assert above.value.field == "ttl"
    assert "exceeds the maximum of namespace 'thumbnail' (120s)" in above.value.message
    for bad in (0.0, -1.0, 0.0004):
        with pytest.raises(InvalidArgument):
            policy.ttl_ms(bad)


def test_unknown_namespace_lists_the_known_ones() -> None:
    namespaces = Namespaces(DEFAULT_POLICIES)
    with pytest.raises(NotFound) as caught:
        namespaces.get("thumbnails")
    assert "unknown namespace 'thumbnails'" in caught.value.message
    for policy in DEFAULT_POLICIES:
        assert policy.name in caught.value.message
    with pytest.raises(InvalidArgument):
        namespaces.get("")


def test_env_spec_overrides_and_adds_namespaces() -> None:
    config = CacheConfig.from_env(
        Env({"CACHE_NAMESPACES": "thumbnail=12h, reports=10m/1h!, image_analysis=2h"})
    )
    thumb = config.namespaces.get("thumbnail")
    assert (thumb.default_ttl, thumb.max_ttl) == (12 * HOUR, 24 * HOUR)
    reports = config.namespaces.get("reports")
    assert (reports.default_ttl, reports.max_ttl, reports.freshness_checked) == (600.0, HOUR, True)
    image = config.namespaces.get("image_analysis")
    assert (image.default_ttl, image.max_ttl) == (2 * HOUR, 2 * HOUR)
    assert len(config.namespaces) == len(DEFAULT_POLICIES) + 1


@pytest.mark.parametrize(
    "spec",
    ["thumbnail", "thumbnail=soon", "Thumb=1h", "x=1h/30m", "y=0s", "a=400d"],
)
def test_bad_env_spec_names_the_variable(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CacheConfig.from_env(Env({"CACHE_NAMESPACES": spec}))
    assert caught.value.variable == "CACHE_NAMESPACES"


def test_file_then_env(tmp_path: Path) -> None:
    path = tmp_path / "namespaces.toml"
    path.write_text(
        '[namespaces.thumbnail]\ndefault_ttl = "2h"\nmax_ttl = "48h"\n\n'
        "[namespaces.faces]\ndefault_ttl = 90\nfreshness_checked = true\n"
    )
    config = CacheConfig.from_env(Env({"CACHE_NAMESPACES_FILE": str(path), "CACHE_NAMESPACES": "faces=1m"}))
    thumb = config.namespaces.get("thumbnail")
    assert (thumb.default_ttl, thumb.max_ttl) == (2 * HOUR, 48 * HOUR)
    faces = config.namespaces.get("faces")
    assert (faces.default_ttl, faces.max_ttl, faces.freshness_checked) == (60.0, 90.0, True)


@pytest.mark.parametrize(
    "text",
    [
        "not toml [",
        "[other]\nx = 1\n",
        '[namespaces.thumbnail]\ndefault_ttl = "often"\n',
        '[namespaces.thumbnail]\nttl = "1h"\n',
        "[namespaces.thumbnail]\nfreshness_checked = 1\n",
        '[namespaces.thumbnail]\ndefault_ttl = "2h"\nmax_ttl = "1h"\n',
    ],
)
def test_bad_file_names_the_variable(tmp_path: Path, text: str) -> None:
    path = tmp_path / "namespaces.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        CacheConfig.from_env(Env({"CACHE_NAMESPACES_FILE": str(path)}))
    assert caught.value.variable == "CACHE_NAMESPACES_FILE"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        CacheConfig.from_env(Env({"CACHE_NAMESPACES_FILE": str(tmp_path / "absent.toml")}))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_URL", "http://localhost"),
        ("CACHE_REDIS_PREFIX", "has space"),
        ("CACHE_REDIS_PREFIX", "glob*"),
        ("CACHE_CODEC", "brotli"),
        ("CACHE_MAX_VALUE_BYTES", "1GiB"),
        ("CACHE_REDIS_TIMEOUT", "forever"),
        ("CACHE_MEMORY_BYTES", "10"),
    ],
)
def test_bad_settings_are_refused_with_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CacheConfig.from_env(Env({variable: value}))
    assert caught.value.variable == variable
