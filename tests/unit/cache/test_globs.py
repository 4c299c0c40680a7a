"""Glob patterns: bad ones refused, and the memory backend matches exactly what Redis SCAN MATCH does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from services.cache.globs import check_pattern, escape, to_regex
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

KEYS = [
    "photo:1",
    "photo:12",
    "photo:2",
    "Photo:3",
    "video:1",
    "a*b",
    "a?b",
    "a[b]c",
    "back\\slash",
    "café",
    "cafe",
    "caf",
    "naïve:x",
    "with space",
    "new\nline",
    "-dash",
    "]bracket",
    "",
]

PATTERNS = [
    "*",
    "photo:*",
    "photo:?",
    "photo:1*",
    "[Pp]hoto:*",
    "[^p]*",
    "[a-c]*",
    "[c-a]*",
    "a\\*b",
    "a\\?b",
    "a\\[b\\]c",
    "a[*?]b",
    "back\\\\slash",
    "caf?",
    "caf??",
    "caf*",
    "*:1",
    "*\n*",
    "[\\-]*",
    "\\]*",
    "with?space",
    "[\\]]*",
]


@pytest.fixture
def scan() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(SHARED_URL)
    prefix = unique_prefix("globs")
    for key in KEYS:
        client.set(prefix + key, b"1", ex=60)
    try:
        yield client, prefix
    finally:
        delete_prefix(SHARED_URL, prefix)
        client.close()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_memory_matching_agrees_with_redis_scan(scan: tuple[redis.Redis, str], pattern: str) -> None:
    client, prefix = scan
    assert check_pattern(pattern) is None
    by_redis = {
        key[len(prefix.encode()) :].decode()
        for key in client.scan_iter(match=escape(prefix) + pattern, count=1000)
    }
    regex = to_regex(pattern)
    by_memory = {key for key in KEYS if regex.fullmatch(key.encode())}
    assert by_memory == by_redis


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("photo[", "unclosed"),
        ("photo[abc", "unclosed"),
        ("photo]", "unmatched"),
        ("trailing\\", "lone backslash"),
        ("[]", "empty"),
        ("[^]x", "empty"),
        ("[a-]", "range without an end"),
        ("[é]", "non-ASCII"),
        ("[a-é]", "non-ASCII"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(pattern: str, problem: str) -> None:
    reason = check_pattern(pattern)
    assert reason is not None
    assert problem in reason


def test_escape_makes_a_literal() -> None:
    for key in KEYS:
        regex = to_regex(escape(key))
        assert [k for k in KEYS if regex.fullmatch(k.encode())] == [key]
