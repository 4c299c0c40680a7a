"""Real media made by the tests: photo-like and synthetic images, every EXIF orientation with a marker,
CMYK, 16-bit, palette with transparency, an ICC profile that is not sRGB, animations, H.264 video
(clean and with corrupted packets) and hostile files (bombs, truncated, corrupt, mislabelled)."""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any, cast

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from PIL.TiffImagePlugin import IFDRational as Fraction

__all__ = [
    "MARKER",
    "animated",
    "cmyk_jpeg",
    "corrupt_h264",
    "exif_bytes",
    "extrema",
    "h264_video",
    "jpeg_bomb",
    "oriented_jpeg",
    "photo",
    "png_bomb",
    "px",
    "rgb_swapped_profile",
    "save",
    "sixteen_bit_png",
]

MARKER = (255, 0, 0)


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The image encoded in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int = 800, height: int = 600, seed: int = 1, noise: float = 4.0) -> Image.Image:
    """A photo-like RGB image: sky gradient, shapes with edges, text, mild grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    zero = np.zeros((height, width), dtype=np.float32)
    base = np.stack(
        [60 + 120 * y + 20 * x + zero, 110 + 80 * y + zero, 200 - 90 * y + 10 * x + zero], axis=-1
    )
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, max(1, width - 40))), int(rng.integers(0, max(1, height - 40)))
        w, h = int(rng.integers(4, max(5, width // 3))), int(rng.integers(4, max(5, height // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour, outline=(0, 0, 0), width=2)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour, outline=(255, 255, 255), width=2)
    for row in range(0, height, max(20, height // 12)):
        draw.text((10, row), "mediasuite test 0123456789", fill=(20, 20, 20))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def exif_bytes(
    orientation: int = 1, *, copyright: str = "", make: str = "TestCam", gps: bool = False
) -> bytes:
    """An EXIF block with camera fields, a capture time and (optionally) GPS."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = "Model X100"
    exif[0x0131] = "mediasuite tests"
    if orientation:
        exif[0x0112] = orientation
    if copyright:
        exif[0x8298] = copyright
        exif[0x013B] = "Ada Lovelace"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:17 14:30:05"
    sub[0x9011] = "+02:00"
    sub[0x829A] = Fraction(1, 250)
    sub[0x829D] = Fraction(28, 10)
    sub[0x8827] = 400
    sub[0x920A] = Fraction(35, 1)
    sub[0xA434] = "Test Lens 35mm"
    if gps:
        g = exif.get_ifd(0x8825)
        g[1] = "N"
        g[2] = (Fraction(48), Fraction(51), Fraction(2952, 100))
        g[3] = "E"
        g[4] = (Fraction(2), Fraction(17), Fraction(4020, 100))
        g[5] = b"\x00"
        g[6] = Fraction(35, 1)
    return exif.tobytes()


# stored -> displayed transposition for each orientation, and its inverse (to make the stored image)
_INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int, width: int = 600, height: int = 400) -> bytes:
    """A JPEG that shows ``width`` x ``height`` with a red marker in the top-left quarter once its
    EXIF orientation is applied (the stored pixels are turned the other way)."""
    shown = Image.new("RGB", (width, height), (30, 120, 200))
    ImageDraw.Draw(shown).rectangle((0, 0, width // 4, height // 4), fill=MARKER)
    inverse = _INVERSE[orientation]
    stored = shown if inverse is None else shown.transpose(inverse)
    return save(stored, "JPEG", quality=92, exif=exif_bytes(orientation, gps=True))


def cmyk_jpeg(width: int = 300, height: int = 200) -> bytes:
    """A CMYK JPEG (no profile): left half pure cyan."""
    image = Image.new("CMYK", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, width // 2, height), fill=(255, 0, 0, 0))
    return save(image, "JPEG", quality=90)


def sixteen_bit_png(width: int = 256, height: int = 64) -> bytes:
    """A 16-bit greyscale PNG: a horizontal ramp over the full 0-65535 range."""
    ramp = np.tile(np.linspace(0, 65535, width, dtype=np.uint16), (height, 1))
    return save(Image.fromarray(ramp), "PNG")


def palette_png_with_transparency(size: int = 120) -> bytes:
    """A palette PNG whose background index is transparent, with an opaque green disc."""
    image = Image.new("P", (size, size), 0)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=1)
    return save(image, "PNG", transparency=0)


def animated(fmt: str, frames: int = 6, size: tuple[int, int] = (80, 60)) -> bytes:
    """An animated GIF or WebP: a square moving right, 100 ms per frame."""
    images = []
    for index in range(frames):
        frame = Image.new("RGB", size, (255, 255, 255))
        left = index * (size[0] - 20) // max(1, frames - 1)
        ImageDraw.Draw(frame).rectangle((left, 20, left + 20, 40), fill=(200, 0, 0))
        images.append(frame)
    options: dict[str, object] = {"save_all": True, "append_images": images[1:], "duration": 100, "loop": 0}
    if fmt == "WEBP":
        options["lossless"] = True
    return save(images[0], fmt, **options)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def rgb_swapped_profile() -> bytes:
    """A valid ICC v2 RGB display profile whose red and blue primaries are swapped: a pure-red pixel
    tagged with it is really blue, so a correct conversion to sRGB turns it blue."""
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)

    description = b"RGB-swapped test profile\0"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(description))
        + description
        + b"\0" * 8
        + b"\0\0\0"
        + b"\0" * 67
    )
    curve = b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", 0x0233) + b"\0\0"  # gamma 2.2
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(blue)),
        (b"gXYZ", xyz(green)),
        (b"bXYZ", xyz(red)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + data


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header promises width x height pixels (the data is a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to promise width x height pixels."""
    data = bytearray(save(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG"))
    index = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, index + 5, height, width)
    return bytes(data)


def blurred(image: Image.Image, radius: float = 6.0) -> Image.Image:
    """The image heavily blurred."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def h264_video(frames: int = 50, size: tuple[int, int] = (320, 240), black_frames: int = 10) -> bytes:
    """An H.264 MP4: ``black_frames`` black frames, then a moving gradient with a bright square."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "10"}
        for index in range(frames):
            pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            if index >= black_frames:
                pixels[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
                pixels[..., 1] = (index * 5) % 255
                pixels[40:100, 20 + index * 3 : 80 + index * 3, :] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def corrupt_h264(frames: int = 50, size: tuple[int, int] = (320, 240), seed: int = 7) -> bytes:
    """The same kind of video remuxed with the payload of some non-key packets overwritten by noise."""
    clean = io.BytesIO(h264_video(frames, size, black_frames=0))
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not crypto)
    out = io.BytesIO()
    with av.open(clean) as source, av.open(out, mode="w", format="mp4") as target:
        in_stream = source.streams.video[0]
        out_stream = target.add_stream_from_template(in_stream)
        for index, packet in enumerate(cast(Any, source).demux(in_stream)):
            if packet.size == 0:
                continue
            written = packet
            if index in (15, 16, 27) and not packet.is_keyframe:
                noisy = bytearray(bytes(packet))
                for position in range(8, len(noisy)):
                    noisy[position] = rng.randrange(256)
                written = av.Packet(bytes(noisy))
                written.pts, written.dts = packet.pts, packet.dts
                written.time_base = packet.time_base
            written.stream = out_stream
            target.mux(written)
    return out.getvalue()


def flat_png(side: int, colour: int = 90) -> bytes:
    """A side x side greyish RGB PNG, written row by row with zlib (small file, slow to decode: it
    inflates to 3 x side^2 bytes), for tests that need an operation to take a while."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    row = b"\0" + bytes([colour]) * (3 * side)
    packer = zlib.compressobj(1)
    parts = [packer.compress(row * 64) for _ in range(side // 64)]
    parts.append(packer.compress(row * (side % 64)))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at ``xy`` as a tuple of channel values (a 1-tuple for single-band images)."""
    value: Any = image.getpixel(xy)
    return tuple(value) if isinstance(value, tuple) else (int(value),)


def extrema(image: Image.Image) -> tuple[int, int]:
    """(lowest, highest) value of a single-band image."""
    low, high = cast(tuple[int, int], image.getextrema())
    return low, high
