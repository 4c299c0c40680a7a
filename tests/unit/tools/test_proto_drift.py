"""The generated-code check passes on the committed tree and fails when a proto changes alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "protos.py"


def _check(protos: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "check",
            "--protos",
            str(protos),
            "--gen",
            str(ROOT / "protos" / "gen" / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_generated_code_is_current() -> None:
    result = _check(ROOT / "protos")
    assert result.returncode == 0, result.stderr
    assert "generated code is current" in result.stdout


def test_changed_proto_without_regeneration_fails(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos" / "mediasuite", protos / "mediasuite")
    proto = protos / "mediasuite" / "cache" / "v1" / "cache_service.proto"
    text = proto.read_text()
    proto.write_text(
        text.replace("message DeleteResponse {", "message DeleteResponse {\n  // New.\n  int32 extra = 9;")
    )
    result = _check(protos)
    assert result.returncode == 1
    assert "differs: mediasuite/cache/v1/cache_service_pb2.py" in result.stderr
    assert "run `make protos`" in result.stderr
