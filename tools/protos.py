"""Generate the suite's Python code from protos/, or check that the committed code is current.

    python tools/protos.py generate          # rewrite protos/gen/python
    python tools/protos.py check             # exit 1 when protos/gen/python differs from what protos/ produce
    python tools/protos.py check --protos DIR --gen DIR
    python tools/protos.py lint --buf PATH   # buf lint (STANDARD + COMMENTS) on our files

One generation for the whole suite: *_pb2.py, *_pb2.pyi (mypy-protobuf), *_pb2_grpc.py and
*_pb2_grpc.pyi, under the import path that equals the proto package (mediasuite.cache.v1 ...).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = PROTOS / "gen" / "python"


def _googleapis_include() -> Path:
    """Directory that holds google/api/annotations.proto (shipped by googleapis-common-protos)."""
    import google.api

    return Path(next(iter(google.api.__path__))).parent.parent


def _protobuf_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def proto_files(protos: Path) -> list[str]:
    """Every .proto of ours under protos/, relative to it, sorted (generation order is stable)."""
    return sorted(str(p.relative_to(protos)) for p in (protos / "mediasuite").rglob("*.proto"))


def generate(protos: Path, out: Path) -> None:
    """Run protoc with the python, grpc and mypy plugins; replaces everything under out."""
    from grpc_tools import protoc

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{protos}",
        f"-I{_googleapis_include()}",
        f"-I{_protobuf_include()}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *proto_files(protos),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}; see the messages above")
    # Namespace packages need no __init__.py; mark the tree as typed for mypy users.
    (out / "mediasuite" / "py.typed").write_text("")


def _tree(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def diff(expected: Path, actual: Path) -> list[str]:
    """Paths (relative) that are missing, extra or different in actual compared with expected."""
    want, have = _tree(expected), _tree(actual)
    problems = [f"missing: {name}" for name in sorted(want.keys() - have.keys())]
    problems += [f"not produced by protos (stale): {name}" for name in sorted(have.keys() - want.keys())]
    problems += [
        f"differs: {name}"
        for name in sorted(want.keys() & have.keys())
        if not filecmp.cmp(want[name], have[name], shallow=False)
    ]
    return problems


def check(protos: Path, gen: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="mediasuite-protos-") as tmp:
        fresh = Path(tmp) / "python"
        generate(protos, fresh)
        problems = diff(fresh, gen)
    if problems:
        print(f"generated code in {gen} is out of date with {protos}:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print("run `make protos` and commit the result", file=sys.stderr)
        return 1
    print(f"generated code is current ({len(_tree(gen))} files)")
    return 0


def lint(protos: Path, buf: str) -> int:
    """Lint our protos with buf, on an image built by protoc (googleapis from the local wheel).

    buf's own dependency resolution would fetch googleapis from the Buf Schema Registry; building
    the image locally keeps lint offline and lints exactly what we generate from.
    """
    import subprocess

    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="mediasuite-buf-") as tmp:
        image = Path(tmp) / "image.binpb"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{protos}",
                f"-I{_googleapis_include()}",
                f"-I{_protobuf_include()}",
                "--include_imports",
                "--include_source_info",
                f"-o{image}",
                *proto_files(protos),
            ]
        )
        if code != 0:
            return int(code)
        result = subprocess.run(  # noqa: S603 (the buf path is ours, from the Makefile)
            [buf, "lint", str(image), "--config", str(protos / "buf.yaml"), "--path", "mediasuite"],
            check=False,
        )
    if result.returncode == 0:
        print(f"buf lint: {len(proto_files(protos))} files clean (STANDARD + COMMENTS)")
    return int(result.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["generate", "check", "lint"])
    parser.add_argument("--protos", type=Path, default=PROTOS, help="proto source root (default: protos/)")
    parser.add_argument(
        "--gen", type=Path, default=GEN, help="generated code root (default: protos/gen/python)"
    )
    parser.add_argument("--buf", default="buf", help="buf executable for lint (default: buf on PATH)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.command == "generate":
        generate(args.protos, args.gen)
        print(f"generated {len(_tree(args.gen))} files into {args.gen}")
        return 0
    if args.command == "lint":
        return lint(args.protos, args.buf)
    return check(args.protos, args.gen)


if __name__ == "__main__":
    raise SystemExit(main())
