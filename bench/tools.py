"""Anchor tools the processing benchmark compares against, installed on first use.

``vipsthumbnail`` (Debian libvips-tools) and ``exiftool`` (libimage-exiftool-perl) come from apt;
thumbor 7 from PyPI into its own virtualenv under .bench/ (it pins its own Pillow, so it must
not share ours). A tool that cannot be installed is reported with the exact error, and the
benchmark keeps the other anchors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ToolError", "ensure_apt_tool", "ensure_thumbor"]

THUMBOR_SPEC = "thumbor>=7,<8"


class ToolError(RuntimeError):
    """A tool could not be installed; the message is the installer's own error."""


def ensure_apt_tool(binary: str, package: str) -> str:
    """The path of ``binary``, installing the Debian ``package`` when it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ToolError(
                f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-500:]}"
            )
    found = shutil.which(binary)
    if not found:
        raise ToolError(f"{package} installed but {binary} is not on PATH")
    return found


def ensure_thumbor(venv: Path) -> Path:
    """The thumbor executable in ``venv``, creating the virtualenv and installing thumbor 7 if needed."""
    executable = venv / "bin" / "thumbor"
    if executable.exists():
        return executable
    python = shutil.which("python3.11") or sys.executable
    steps = (
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", THUMBOR_SPEC],
    )
    for command in steps:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ToolError(
                f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-800:]}"
            )
    if not executable.exists():
        raise ToolError(f"thumbor installed but {executable} is missing")
    return executable
