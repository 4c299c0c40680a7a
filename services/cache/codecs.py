"""Compression of stored values: zstd, LZ4 or zlib, applied only when it saves space.

The codec is recorded with every entry (see ``entries.py``), so a reader never guesses and the
configured codec may change while entries written with another one are still stored: every
codec can always be read.

Why zstd by default: on the suite's kinds of values (JSON metadata and analyses, text summaries)
``bench/bench_cache.py`` measures zstd level 3 storing them about 10% smaller than zlib level 6
(ratio 5.0 against 4.5), compressing 2.8 times and decompressing 2 times as fast; LZ4 is faster
still (3 times zstd) but stores twice as many bytes (ratio 2.6). A cache's size decides how much
fits in Redis' memory, and at hundreds of MB/s either codec costs microseconds per entry next to a
gRPC call's few hundred, so the better ratio wins. Already-compressed media (JPEG, WebP) gains
nothing with any codec and is stored raw. The README has the measured table.
"""

from __future__ import annotations

import enum
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import lz4.frame
import zstandard

__all__ = ["Codec", "Compressor", "compress", "decompress"]


class Codec(enum.IntEnum):
    """How a stored value is encoded; the numbers are those of the proto's Codec enum."""

    RAW = 1
    ZSTD = 2
    LZ4 = 3
    ZLIB = 4


ZSTD_LEVEL = 3
ZLIB_LEVEL = 6


class _ZstdContexts(threading.local):
    """One zstd compression and one decompression context per thread: a context is not thread
    safe (python-zstandard says so; two executor threads sharing one crashed the cache in memcpy),
    and making one per call costs more than the compression of a small value."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_zstd_contexts = _ZstdContexts()


def _zstd(data: bytes) -> bytes:
    return _zstd_contexts.compressor.compress(data)


def _lz4(data: bytes) -> bytes:
    return bytes(lz4.frame.compress(data, store_size=True))


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data, ZLIB_LEVEL)


_COMPRESS: dict[Codec, Callable[[bytes], bytes]] = {
    Codec.ZSTD: _zstd,
    Codec.LZ4: _lz4,
    Codec.ZLIB: _zlib,
}


def compress(codec: Codec, data: bytes) -> bytes:
    """``data`` compressed with ``codec`` (RAW returns it unchanged)."""
    if codec is Codec.RAW:
        return data
    return _COMPRESS[codec](data)


def decompress(codec: Codec, data: bytes, raw_size: int) -> bytes:
    """The original bytes of a stored value; ValueError when the data is corrupt."""
    if codec is Codec.RAW:
        return data
    try:
        if codec is Codec.ZSTD:
            out = _zstd_contexts.decompressor.decompress(data, max_output_size=raw_size)
        elif codec is Codec.LZ4:
            out = bytes(lz4.frame.decompress(data))
        elif codec is Codec.ZLIB:
            out = zlib.decompress(data)
        else:  # pragma: no cover (Codec is closed)
            raise ValueError(f"unknown codec {codec!r}")
    except (zstandard.ZstdError, RuntimeError, zlib.error) as error:
        raise ValueError(f"corrupt {codec.name} value: {error}") from error
    if len(out) != raw_size:
        raise ValueError(f"corrupt {codec.name} value: {len(out)} bytes, expected {raw_size}")
    return out


@dataclass(frozen=True)
class Compressor:
    """The write-side policy: compress values longer than ``threshold`` bytes with ``codec``,
    and keep the result only when it is smaller than the value."""

    codec: Codec
    threshold: int

    def wants(self, size: int) -> bool:
        """Whether a value of ``size`` bytes is worth trying to compress."""
        return self.codec is not Codec.RAW and size > self.threshold

    def apply(self, data: bytes) -> tuple[Codec, bytes]:
        """(codec used, stored bytes): compressed when that saves space, else (RAW, data)."""
        if not self.wants(len(data)):
            return Codec.RAW, data
        packed = compress(self.codec, data)
        if len(packed) < len(data):
            return self.codec, packed
        return Codec.RAW, data
