"""The container image, checked without a Docker engine: the Dockerfile lints clean, its final
stage runs what the Deployments run, the build context holds what it copies, and the package it
installs carries the generated code."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.k8s import PROCESS_NAMES, ROOT, VARIANTS, rendered

BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction (continuation lines joined)."""

    keyword: str
    value: str


def stages() -> list[list[Instruction]]:
    """The Dockerfile's build stages, each a list of instructions (FROM first)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[list[Instruction]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, value = line.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip())
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def final_stage() -> list[Instruction]:
    """Instructions of the stage the image is made of."""
    return stages()[-1]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_from_a_slim_python_311() -> None:
    assert len(stages()) >= 2
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert arg is not None
    assert re.fullmatch(r"python:3\.11[\w.]*-slim[\w-]*", arg.group(1))
    for stage in stages():
        assert stage[0].value.startswith("${PYTHON_IMAGE}")


def test_final_stage_runs_as_the_non_root_user_the_pods_declare() -> None:
    users = [i.value for i in final_stage() if i.keyword == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(uid) >= 10000
    for variant in VARIANTS:
        for container in rendered(variant).process_containers().values():
            assert container.pod["securityContext"]["runAsUser"] == int(uid)


def test_final_command_matches_what_the_deployments_run() -> None:
    stage = final_stage()
    assert not [i for i in stage if i.keyword == "ENTRYPOINT"], "no ENTRYPOINT: `command` is the whole argv"
    (cmd,) = [i.value for i in stage if i.keyword == "CMD"][-1:]
    default = json.loads(cmd)  # exec form: no shell runs it
    scripts = PYPROJECT["project"]["scripts"]
    assert len(default) == 1
    assert default[0] in scripts
    env_path = next(i.value for i in stage if i.keyword == "ENV" and i.value.startswith("PATH="))
    venv_bin = env_path.removeprefix("PATH=").split(":")[0]
    venv = str(Path(venv_bin).parent)
    assert any(i.keyword == "COPY" and i.value.split()[-1] == venv and "--from=" in i.value for i in stage)
    for variant in VARIANTS:
        for process, container in rendered(variant).process_containers().items():
            command = container.spec["command"]
            assert command == [f"mediasuite-{process}"], f"{variant}: {command}"
            assert container.workload_name == process
            assert "args" not in container.spec
            assert command[0] in scripts, "a console script the image installs into its PATH"
    assert {f"mediasuite-{p}" for p in PROCESS_NAMES} <= set(scripts)


def test_final_stage_exposes_every_port_the_pods_declare() -> None:
    exposed = {int(p) for i in final_stage() if i.keyword == "EXPOSE" for p in i.value.split()}
    for variant in VARIANTS:
        for container in rendered(variant).process_containers().values():
            assert set(container.ports().values()) <= exposed


def _context_files() -> set[str]:
    """The files `docker build` sends, by .dockerignore rules (last matching pattern wins)."""
    tracked = subprocess.run(
        [shutil.which("git") or "/usr/bin/git", "ls-files"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = set()
    for path in tracked:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            parts = Path(path).parts
            prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
            if any(fnmatch.fnmatch(p, body) or fnmatch.fnmatch(p, body.replace("**/", "")) for p in prefixes):
                keep = negate
        if keep:
            included.add(path)
    return included


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    context = _context_files()
    sources = [
        source
        for stage in stages()
        for i in stage
        if i.keyword == "COPY" and "--from=" not in i.value
        for source in i.value.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in context), (
            f"{source} is ignored"
        )
    assert not [f for f in context if f.startswith(("tests/", "bench/", "deploy/", ".ci/", "tools/"))]


def test_runtime_dependencies_are_pinned_in_the_lock_file() -> None:
    lock = (ROOT / "requirements" / "lock.txt").read_text().lower()
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert re.search(rf"^{re.escape(name)}==", lock, re.MULTILINE), f"{name} is not pinned"


@pytest.mark.slow
def test_the_package_carries_the_generated_code_and_every_console_script(tmp_path: Path) -> None:
    """What the builder stage's `pip install .` installs, built here as a wheel."""
    subprocess.run(
        [str(BIN / "python"), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("mediasuite-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for process in PROCESS_NAMES:
        assert f"mediasuite-{process} = " in entry_points
    for package in ("cache", "processing", "batch", "monitor"):
        assert any(n.startswith(f"mediasuite/{package}/v1/") and n.endswith("_pb2_grpc.py") for n in names)
    assert {"services/runtime/server.py", "gateway/server.py"} <= names
