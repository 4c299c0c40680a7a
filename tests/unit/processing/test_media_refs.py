"""Media references: paths stay under the root, limits are named, hashes are memoised safely."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from services.processing.limits import Limits
from services.processing.media import HashMemo, MediaRoot
from services.runtime.errors import InvalidArgument, LimitExceeded, NotFound, PermissionDenied


@pytest.fixture
def root(tmp_path: Path) -> MediaRoot:
    (tmp_path / "media" / "a").mkdir(parents=True)
    (tmp_path / "media" / "a" / "x.jpg").write_bytes(b"1234")
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    return MediaRoot(tmp_path / "media", Limits(max_file_bytes=10, max_inline_bytes=5))


@pytest.mark.parametrize(
    "path", ["../outside.jpg", "/etc/passwd", "a/../../outside.jpg", "a\\..\\..\\outside.jpg", "C:\\x"]
)
def test_escapes_are_permission_denied(root: MediaRoot, path: str) -> None:
    with pytest.raises(PermissionDenied, match=r"media root|absolute|'\.\.'"):
        root.resolve(path, "media.path")


def test_symlinks_leaving_the_root_are_refused_and_those_inside_are_followed(
    root: MediaRoot, tmp_path: Path
) -> None:
    (root.root / "out.jpg").symlink_to(tmp_path / "outside.jpg")
    (root.root / "in.jpg").symlink_to(root.root / "a" / "x.jpg")
    with pytest.raises(PermissionDenied, match="symlink"):
        root.resolve("out.jpg", "media.path")
    source = root.resolve("in.jpg", "media.path")
    assert source.path == os.path.realpath(root.root / "a" / "x.jpg")
    assert source.relative_path == "in.jpg"


def test_missing_empty_directory_and_large_files(root: MediaRoot) -> None:
    with pytest.raises(NotFound):
        root.resolve("a/none.jpg", "media.path")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        root.resolve("a", "media.path")
    (root.root / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidArgument, match="empty"):
        root.resolve("empty.jpg", "media.path")
    (root.root / "big.jpg").write_bytes(b"x" * 11)
    with pytest.raises(LimitExceeded) as caught:
        root.resolve("big.jpg", "media.path")
    assert caught.value.metadata == {
        "limit": "max_file_bytes",
        "maximum": "10",
        "actual": "11",
        "env": "PROCESSING_MAX_FILE_BYTES",
    }


def test_inline_limits(root: MediaRoot) -> None:
    assert root.inline(b"abc", "media.inline").size_bytes == 3
    with pytest.raises(LimitExceeded, match="PROCESSING_MAX_INLINE_BYTES"):
        root.inline(b"abcdef", "media.inline")
    with pytest.raises(InvalidArgument, match="empty"):
        root.inline(b"", "media.inline")


def test_hash_memo_rehashes_a_changed_file(root: MediaRoot) -> None:
    memo = HashMemo()
    path = root.root / "a" / "x.jpg"
    first = memo.hash_of(root.resolve("a/x.jpg", "p"))
    assert first == "sha256:" + hashlib.sha256(b"1234").hexdigest()
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 1))
    assert memo.hash_of(root.resolve("a/x.jpg", "p")) == "sha256:" + hashlib.sha256(b"12345").hexdigest()
