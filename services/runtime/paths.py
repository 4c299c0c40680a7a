"""Paths from callers, confined to the media root: every way out of it is refused, by name."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from services.runtime.errors import InvalidArgument, NotFound, PermissionDenied

__all__ = ["Confined", "confine"]


def _outside(field: str, message: str) -> PermissionDenied:
    return PermissionDenied(f"{field} {message}", reason="PATH_OUTSIDE_ROOT", metadata={"field": field})


class Confined(NamedTuple):
    """A caller's path found under the root."""

    real: Path  # symlinks resolved
    info: os.stat_result
    relative: PurePosixPath  # as given, with / separators


def confine(real_root: Path, relative: str, field: str) -> Confined:
    """The real path of ``relative`` under ``real_root`` (itself a real path) and its stat.

    INVALID_ARGUMENT for a NUL character; PERMISSION_DENIED (reason ``PATH_OUTSIDE_ROOT``) for an
    absolute or drive path, a ``..`` part or a symlink that leads out; NOT_FOUND when nothing is
    there or it cannot be read. Blocking (one realpath and one stat).
    """
    if "\x00" in relative:
        raise InvalidArgument(f"{field} contains a NUL character", field=field)
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or (len(relative) > 1 and relative[1] == ":"):
        raise _outside(field, f"{relative!r} is absolute: give a path relative to the media root")
    if ".." in posix.parts:
        raise _outside(field, f"{relative!r} contains '..': paths may not leave the media root")
    real = Path(os.path.realpath(real_root / posix))
    if real != real_root and real_root not in real.parents:
        raise _outside(field, f"{relative!r} leads outside the media root (through a symlink)")
    try:
        info = real.stat()
    except FileNotFoundError:
        raise NotFound(f"{field} {relative!r} does not exist under the media root") from None
    except OSError as error:
        raise NotFound(f"{field} {relative!r} cannot be read: {error.strerror}") from None
    return Confined(real, info, posix)
