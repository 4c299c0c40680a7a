"""The README's curl examples run as written against the real suite (the gateway's address swapped in),
with an admin key in MEDIASUITE_API_KEY as `make run` prints it, and fail without it."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

from gateway.auth import hash_key, new_key
from tests.support.processes import BASH, base_env, free_port, service_process
from tools.readme import README

START = "<!-- curl-examples"
END = "<!-- end curl-examples -->"
CURL_TIMED_OUT = 28  # --max-time reached: how a live stream example ends once its service streams


def examples() -> list[str]:
    text = README.read_text()
    block = text[text.index(START) : text.index(END)]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def test_readme_curl_examples_run_as_written(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is needed to check the README's examples"
    lines = examples()
    assert len(lines) >= 8
    with contextlib.ExitStack() as stack:
        addresses = {
            f"{name.upper()}_ADDR": stack.enter_context(service_process(name, tmp_path)).address
            for name in ("cache", "processing", "batch", "monitor")
        }
        http = f"127.0.0.1:{free_port()}"
        key = new_key()
        entry = f"readme:admin:{hash_key(key)}"
        keys = {"GATEWAY_API_KEYS": entry, "GATEWAY_HTTP_LISTEN": http}
        stack.enter_context(service_process("gateway", tmp_path, **keys, **addresses))
        for line in lines:
            command = line.replace("127.0.0.1:8080", http)
            done = subprocess.run(
                [BASH, "-c", command],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=tmp_path,
                env=base_env(MEDIASUITE_API_KEY=key),
                check=False,
            )
            allowed = {0, CURL_TIMED_OUT} if "--max-time" in line else {0}
            assert done.returncode in allowed, (line, done.returncode, done.stderr)
            out = done.stdout.strip()
            assert out, line
            if out.startswith("{"):
                for chunk in out.splitlines():
                    json.loads(chunk)  # JSON, or JSON lines
            elif "openapi.json" in line:
                assert out == "200 application/json", out
            else:
                assert out.startswith(("data:", "event:", "id:", ":")), (line, out[:200])
            assert '"code":16' not in out, f"{line}: refused its key"
            if "MEDIASUITE_API_KEY" in line:  # without the key, the same call is refused
                refused = subprocess.run(
                    [BASH, "-c", command],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    cwd=tmp_path,
                    env=base_env(MEDIASUITE_API_KEY="msk_wrong"),
                    check=False,
                )
                assert '"code":16' in refused.stdout, (line, refused.stdout[:200])
