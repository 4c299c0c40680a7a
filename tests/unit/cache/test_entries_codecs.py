"""Entries round-trip through compression and their header; compression only when it saves space."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cache.codecs import Codec, Compressor, compress, decompress
from services.cache.entries import Fingerprint, decode_value, head_sizes, pack_entry, read_header

CODECS = [Codec.ZSTD, Codec.LZ4, Codec.ZLIB]

# Compressible: short runs of a small alphabet, repeated, of any size up to 256 KiB.
compressible = st.builds(
    lambda unit, times: (unit * (times // max(len(unit), 1) + 1))[:times],
    st.binary(min_size=1, max_size=64),
    st.integers(min_value=0, max_value=256 * 1024),
)
random_bytes = st.binary(min_size=0, max_size=64 * 1024)
fingerprints = st.none() | st.builds(
    Fingerprint,
    st.text(min_size=1, max_size=200).filter(lambda p: "\x00" not in p),
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=0, max_value=2**62),
    st.sampled_from(["", "sha256:" + "ab" * 32]),
)


def _round_trip(compressor: Compressor, value: bytes, fingerprint: Fingerprint | None, ctype: str) -> None:
    codec, stored = compressor.apply(value)
    blob = pack_entry(
        codec,
        stored,
        raw_size=len(value),
        stored_at_ms=1_700_000_000_000,
        expires_at_ms=1_700_000_060_000,
        fingerprint=fingerprint,
        content_type=ctype,
    )
    header = read_header(blob)
    assert decode_value(header, blob) == value
    assert header.codec is codec
    assert header.raw_size == len(value)
    assert header.stored_size == len(stored)
    assert header.fingerprint == fingerprint
    assert header.content_type == ctype
    assert (header.stored_at_ms, header.expires_at_ms) == (1_700_000_000_000, 1_700_000_060_000)
    assert head_sizes(blob[:50]) == (len(value), header.offset)
    # Compression is kept only when it saves space.
    assert len(stored) <= len(value)
    if codec is not Codec.RAW:
        assert len(stored) < len(value)
        assert len(value) > compressor.threshold


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@settings(max_examples=60, deadline=None)
@given(value=compressible, fingerprint=fingerprints, ctype=st.text(max_size=40))
def test_compressible_values_round_trip(
    codec: Codec, value: bytes, fingerprint: Fingerprint | None, ctype: str
) -> None:
    _round_trip(Compressor(codec, 1024), value, fingerprint, ctype)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@settings(max_examples=60, deadline=None)
@given(value=random_bytes, fingerprint=fingerprints)
def test_random_values_round_trip(codec: Codec, value: bytes, fingerprint: Fingerprint | None) -> None:
    _round_trip(Compressor(codec, 1024), value, fingerprint, "application/octet-stream")


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_compressible_values_over_the_threshold_are_compressed(codec: Codec) -> None:
    compressor = Compressor(codec, 1024)
    value = b'{"exif": {"Make": "Canon", "Model": "EOS R5"}, "width": 8192}\n' * 100
    used, stored = compressor.apply(value)
    assert used is codec
    assert len(stored) < len(value) // 4
    assert decompress(codec, stored, len(value)) == value
    # At or under the threshold nothing is tried.
    assert compressor.apply(value[:1024]) == (Codec.RAW, value[:1024])


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("size", [1025, 4096, 65536, 1024 * 1024])
def test_incompressible_values_are_stored_raw(codec: Codec, size: int) -> None:
    value = os.urandom(size)
    assert Compressor(codec, 1024).apply(value) == (Codec.RAW, value)


def test_raw_codec_never_compresses() -> None:
    value = b"a" * 100_000
    assert Compressor(Codec.RAW, 0).apply(value) == (Codec.RAW, value)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_corrupt_compressed_data_is_an_error_not_garbage(codec: Codec) -> None:
    value = b"hello world " * 500
    stored = bytearray(compress(codec, value))
    stored[len(stored) // 2] ^= 0xFF
    stored = stored[: len(stored) - 3]
    with pytest.raises(ValueError, match="corrupt"):
        decompress(codec, bytes(stored), len(value))


@pytest.mark.parametrize("blob", [b"", b"xx", b"MC" + b"\x00" * 10, b"XY" + b"\x00" * 60])
def test_foreign_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"header|entry"):
        read_header(blob)
    assert head_sizes(blob) is None


def test_header_strings_cannot_run_past_the_blob() -> None:
    blob = pack_entry(
        Codec.RAW,
        b"v",
        raw_size=1,
        stored_at_ms=0,
        expires_at_ms=0,
        fingerprint=Fingerprint("a/b.jpg", 1, 2),
        content_type="text/plain",
    )
    with pytest.raises(ValueError, match="past its end"):
        read_header(blob[:52])


def test_fingerprint_matching() -> None:
    stored = Fingerprint("a.jpg", 10, 99, "sha256:" + "aa" * 32)
    assert stored.matches(Fingerprint("a.jpg", 10, 99))
    assert not stored.matches(Fingerprint("a.jpg", 11, 99))
    assert not stored.matches(Fingerprint("b.jpg", 10, 99))
    # A content hash on both sides decides, whatever size and mtime say.
    assert stored.matches(Fingerprint("a.jpg", 12, 0, "sha256:" + "aa" * 32))
    assert not stored.matches(Fingerprint("a.jpg", 10, 99, "sha256:" + "bb" * 32))


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_round_trip_from_many_threads_at_once(codec: Codec) -> None:
    """The cache compresses and decompresses in its executor's threads, many at once: every round
    trip must come back intact (zstd contexts shared across threads crashed the process)."""
    values = [os.urandom(50) * (37 * i + 100) for i in range(64)]
    wrong: list[int] = []

    def work(worker: int) -> None:
        for step in range(1500):
            value = values[(worker * 7 + step) % len(values)]
            if decompress(codec, compress(codec, value), len(value)) != value:
                wrong.append(step)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
