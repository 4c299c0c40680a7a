"""EXIF as typed fields (camera, lens, time taken, exposure, GPS, orientation, rights) and as a raw
name -> text map, read defensively: a malformed tag is skipped, never fatal."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image

__all__ = ["ExifData", "Gps", "raw_exif", "read_exif"]

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_RAW_VALUE_MAX = 256
_RAW_TAGS_MAX = 512


@dataclass(frozen=True)
class Gps:
    """A position in decimal degrees and metres."""

    latitude: float
    longitude: float
    altitude_m: float


@dataclass(frozen=True)
class ExifData:
    """The EXIF fields a media library uses."""

    make: str = ""
    model: str = ""
    lens: str = ""
    taken_at: dt.datetime | None = None
    exposure_time_s: float = 0.0
    f_number: float = 0.0
    iso: int = 0
    focal_length_mm: float = 0.0
    gps: Gps | None = None
    orientation: int = 0
    copyright: str = ""
    artist: str = ""
    software: str = ""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()[:_RAW_VALUE_MAX]


def _number(value: Any) -> float:
    if isinstance(value, tuple | list) and value:
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return number if math.isfinite(number) else 0.0  # NaN/inf from 0/0


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(Fraction(str(part))) if not isinstance(part, float) else part for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        try:
            d, m, s = (_number(part) for part in value)
        except TypeError:
            return None
    degrees = d + m / 60 + s / 3600
    if _text(ref).upper() in ("S", "W"):
        degrees = -degrees
    return degrees


def _taken_at(text: str, offset: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = dt.UTC
    offset = offset.strip()
    if len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        try:
            delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
            zone = dt.timezone(delta if offset[0] == "+" else -delta)
        except ValueError:
            zone = dt.UTC
    return moment.replace(tzinfo=zone)


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # a broken sub-IFD is skipped, the rest of the EXIF still counts
        return {}


def read_exif(exif: Image.Exif) -> ExifData:
    """The typed fields of ``exif`` (an empty ExifData when there is none)."""
    base = dict(exif)
    if not base:
        return ExifData()
    sub = _ifd(exif, _EXIF_IFD)
    gps_ifd = _ifd(exif, _GPS_IFD)
    gps = None
    if 2 in gps_ifd and 4 in gps_ifd:
        lat = _degrees(gps_ifd[2], gps_ifd.get(1))
        lon = _degrees(gps_ifd[4], gps_ifd.get(3))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            altitude = _number(gps_ifd.get(6, 0))
            if gps_ifd.get(5) in (1, b"\x01"):
                altitude = -altitude
            gps = Gps(lat, lon, altitude)
    orientation = base.get(0x0112, 0)
    iso = sub.get(0x8827, 0)
    return ExifData(
        make=_text(base.get(0x010F)),
        model=_text(base.get(0x0110)),
        lens=_text(sub.get(0xA434)),
        taken_at=_taken_at(_text(sub.get(0x9003) or base.get(0x0132)), _text(sub.get(0x9011))),
        exposure_time_s=_number(sub.get(0x829A)),
        f_number=_number(sub.get(0x829D)),
        iso=int(_number(iso)),
        focal_length_mm=_number(sub.get(0x920A)),
        gps=gps,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 0,
        copyright=_text(base.get(0x8298)),
        artist=_text(base.get(0x013B)),
        software=_text(base.get(0x0131)),
    )


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return value[:64].hex() if any(b < 9 for b in value[:64]) else _text(value)
    return str(value)[:_RAW_VALUE_MAX]


def raw_exif(exif: Image.Exif) -> dict[str, str]:
    """Every readable tag as name -> text (sub-IFDs flattened, at most a few hundred tags)."""
    found: dict[str, str] = {}
    for tag, value in dict(exif).items():
        if tag in (_EXIF_IFD, _GPS_IFD):
            continue
        found[ExifTags.TAGS.get(tag, f"0x{tag:04x}")] = _show(value)
    for tag, value in _ifd(exif, _EXIF_IFD).items():
        found[ExifTags.TAGS.get(tag, f"0x{tag:04x}")] = _show(value)
    for tag, value in _ifd(exif, _GPS_IFD).items():
        found[ExifTags.GPSTAGS.get(tag, f"GPS0x{tag:04x}")] = _show(value)
    return dict(list(found.items())[:_RAW_TAGS_MAX])
