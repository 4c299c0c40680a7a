"""``mediactl cache`` against a real cache process: what a person types and reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.cli.mediactl import cli
from tests.support.processes import Running, service_process


@pytest.fixture(scope="module")
def cache_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with service_process("cache", tmp_path_factory.mktemp("cache")) as running:
        yield running


def _run(cache: Running, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--cache-addr", cache.address, "cache", *args])


def test_set_get_delete(cache_process: Running, tmp_path: Path) -> None:
    stored = _run(cache_process, "set", "collection_summary", "2024", '{"items": 120}', "--ttl", "10m")
    assert stored.exit_code == 0, stored.output
    assert "stored collection_summary/2024: 14 B as 14 B (raw)" in stored.output

    got = _run(cache_process, "get", "collection_summary", "2024")
    assert got.exit_code == 0, got.output
    assert got.stdout_bytes == b'{"items": 120}'

    source = tmp_path / "thumb.bin"
    source.write_bytes(b"\x89PNG" + b"x" * 5000)
    assert _run(cache_process, "set", "thumbnail", "photo:1", "--file", str(source)).exit_code == 0
    out = tmp_path / "out.bin"
    info = _run(cache_process, "get", "thumbnail", "photo:1", "-o", str(out), "--info")
    assert info.exit_code == 0, info.output
    assert out.read_bytes() == source.read_bytes()
    assert "(zstd)" in info.stderr

    deleted = _run(cache_process, "delete", "thumbnail", "photo:1", "photo:2")
    assert "deleted 1 of 2" in deleted.output
    missing = _run(cache_process, "get", "thumbnail", "photo:1")
    assert missing.exit_code == 1
    assert "thumbnail/photo:1: not found (absent)" in missing.output


def test_invalidate_and_stats(cache_process: Running) -> None:
    for i in range(3):
        assert _run(cache_process, "set", "image_analysis", f"album:{i}", "v").exit_code == 0
    invalidated = _run(cache_process, "invalidate", "image_analysis", "--prefix", "album:")
    assert invalidated.exit_code == 0, invalidated.output
    assert "deleted 3 entries" in invalidated.output
    everywhere = _run(cache_process, "invalidate", "*", "--pattern", "nothing-*")
    assert "deleted 0 entries" in everywhere.output

    stats = _run(cache_process, "stats")
    assert stats.exit_code == 0, stats.output
    assert "image_analysis" in stats.output
    assert "backend: memory, ok" in stats.output
    as_json = _run(cache_process, "stats", "--json", "--namespace", "image_analysis")
    assert '"sets": "3"' in as_json.output
    assert '"deletes": "3"' in as_json.output


def test_errors_say_what_to_do(cache_process: Running) -> None:
    unknown = _run(cache_process, "get", "thumbnails", "k")
    assert unknown.exit_code == 1
    assert "unknown namespace 'thumbnails'" in unknown.output
    assert "mediactl cache namespaces" in unknown.output

    too_long = _run(cache_process, "set", "thumbnail", "k", "v", "--ttl", "48h")
    assert "exceeds the maximum of namespace 'thumbnail'" in too_long.output

    bad_ttl = _run(cache_process, "set", "thumbnail", "k", "v", "--ttl", "soon")
    assert bad_ttl.exit_code == 2
    assert "is not a duration" in bad_ttl.output

    bad_pattern = _run(cache_process, "invalidate", "thumbnail", "--pattern", "a[")
    assert "unclosed '['" in bad_pattern.output

    two = _run(cache_process, "invalidate", "thumbnail", "--prefix", "a", "--pattern", "b")
    assert two.exit_code == 2
    assert "exactly one of --prefix, --pattern or --source" in two.output

    down = CliRunner().invoke(cli, ["--cache-addr", "127.0.0.1:1", "--timeout", "2", "cache", "stats"])
    assert down.exit_code == 1
    assert "UNAVAILABLE" in down.output
    assert "is the cache running there?" in down.output


def test_namespaces_and_help(cache_process: Running) -> None:
    listed = _run(cache_process, "namespaces")
    assert "bulk_operation_result" in listed.output
    assert "0:15:00" in listed.output
    for command in ("stats", "get", "set", "delete", "invalidate", "namespaces"):
        shown = CliRunner().invoke(cli, ["cache", command, "--help"])
        assert shown.exit_code == 0
        assert "Example" in shown.output
