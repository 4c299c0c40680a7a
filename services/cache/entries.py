"""How one cache entry is stored: a fixed binary header, three short strings, then the value.

One entry is one opaque byte string in every backend (one Redis string per key), so GetMany is a
single MGET, and the header travels with the value: the codec (a reader never guesses), the raw
and stored sizes, when it was stored and expires, the source fingerprint and the content type.

Layout (little-endian)::

    magic "MC" | version u8 | codec u8 | raw_size u64 | stored_at_ms u64 | expires_at_ms u64 |
    fp_size i64 | fp_mtime_ns i64 | path_len u16 | hash_len u16 | type_len u16 |
    path | hash | content_type | stored value
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from services.cache.codecs import Codec, decompress

__all__ = [
    "HEADER",
    "Fingerprint",
    "Header",
    "decode_value",
    "head_sizes",
    "pack_entry",
    "read_header",
]

MAGIC = b"MC"
VERSION = 1
HEADER = struct.Struct("<2sBBQQQqqHHH")
MAX_TEXT = 0xFFFF
_CODECS: dict[int, Codec] = {int(c): c for c in Codec}


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The exact version of a source file: relative path, size and mtime, or a content hash."""

    path: str
    size_bytes: int = 0
    mtime_ns: int = 0
    content_hash: str = ""

    def matches(self, current: Fingerprint) -> bool:
        """Whether an entry made from ``self`` is fresh for the source as ``current`` describes it.

        When both carry a content hash, the hashes decide; otherwise path, size and mtime must all
        be equal.
        """
        if self.content_hash and current.content_hash:
            return self.content_hash == current.content_hash
        return (
            self.path == current.path
            and self.size_bytes == current.size_bytes
            and self.mtime_ns == current.mtime_ns
        )


@dataclass(frozen=True, slots=True)
class Header:
    """Everything about a stored entry except its value."""

    codec: Codec
    raw_size: int
    stored_at_ms: int
    expires_at_ms: int
    fingerprint: Fingerprint | None
    content_type: str
    offset: int  # where the stored value starts in the blob
    stored_size: int  # bytes of the stored (possibly compressed) value


def pack_entry(
    codec: Codec,
    stored: bytes,
    *,
    raw_size: int,
    stored_at_ms: int,
    expires_at_ms: int,
    fingerprint: Fingerprint | None,
    content_type: str,
) -> bytes:
    """The blob of one entry (header, strings, stored value)."""
    path = hash_ = b""
    size = mtime = 0
    if fingerprint is not None:
        path = fingerprint.path.encode()
        hash_ = fingerprint.content_hash.encode()
        size, mtime = fingerprint.size_bytes, fingerprint.mtime_ns
        if not path:  # a fingerprint always has a path; an empty one marks "no fingerprint"
            path = b"\x00"
    ctype = content_type.encode()
    head = HEADER.pack(
        MAGIC,
        VERSION,
        int(codec),
        raw_size,
        stored_at_ms,
        expires_at_ms,
        size,
        mtime,
        len(path),
        len(hash_),
        len(ctype),
    )
    return b"".join((head, path, hash_, ctype, stored))


def read_header(blob: bytes) -> Header:
    """The header of a blob; ValueError when it is not an entry this version can read."""
    if len(blob) < HEADER.size:
        raise ValueError("entry shorter than its header")
    magic, version, codec, raw, stored_at, expires_at, size, mtime, n_path, n_hash, n_type = (
        HEADER.unpack_from(blob)
    )
    if magic != MAGIC or version != VERSION:
        raise ValueError("not a cache entry of this version")
    kind = _CODECS.get(codec)
    if kind is None:
        raise ValueError(f"unknown codec {codec}")
    offset = HEADER.size
    if not (n_path or n_hash or n_type):  # the common case: nothing but the value follows
        return Header(kind, raw, stored_at, expires_at, None, "", offset, len(blob) - offset)
    end = offset + n_path + n_hash + n_type
    if end > len(blob):
        raise ValueError("entry header runs past its end")
    fingerprint = None
    if n_path:
        path = blob[offset : offset + n_path]
        fingerprint = Fingerprint(
            "" if path == b"\x00" else path.decode(),
            size,
            mtime,
            blob[offset + n_path : offset + n_path + n_hash].decode(),
        )
    content_type = blob[offset + n_path + n_hash : end].decode() if n_type else ""
    return Header(kind, raw, stored_at, expires_at, fingerprint, content_type, end, len(blob) - end)


def head_sizes(head: bytes) -> tuple[int, int] | None:
    """(raw size, offset of the stored value) from the fixed part of a header, or None."""
    if len(head) < HEADER.size:
        return None
    fields = HEADER.unpack_from(head)
    if fields[0] != MAGIC or fields[1] != VERSION:
        return None
    return fields[3], HEADER.size + fields[8] + fields[9] + fields[10]


def decode_value(header: Header, blob: bytes) -> bytes:
    """The value as it was set (decompressed); ValueError when corrupt."""
    stored = blob[header.offset :] if header.offset else blob
    return decompress(header.codec, stored, header.raw_size)
