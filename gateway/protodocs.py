"""The proto comments, for the OpenAPI document and the docs page.

protoc's Python output carries no comments, but the typed stubs mypy-protobuf writes beside it
(``*_pb2.pyi``, ``*_pb2_grpc.pyi``, generated in the same run and kept in sync by the drift
check) hold every comment as a docstring. They are read once at start with :mod:`ast`; where a
stub is missing (an install without them), the documents simply carry no prose.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

__all__ = ["ProtoDocs", "docs_for", "load_docs"]

ProtoDocs = dict[str, str]  # full proto name ("pkg.Message", "pkg.Message.field", "pkg.Service.Rpc") -> text


def _clean(text: str | None) -> str:
    """One line per paragraph: the stub's line breaks are the proto's wrapping, not meaning."""
    paragraphs = (text or "").strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _stub(file: FileDescriptor, suffix: str) -> Path | None:
    module_name = file.name.removesuffix(".proto").replace("/", ".") + "_pb2"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    if module.__file__ is None:
        return None
    path = Path(module.__file__).with_name(Path(module.__file__).stem + suffix)
    return path if path.exists() else None


def _messages(body: list[ast.stmt], prefix: str, docs: ProtoDocs) -> None:
    for node in body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        name = f"{prefix}.{node.name}"
        if text := _clean(ast.get_docstring(node)):
            docs[name] = text
        previous: ast.stmt | None = None
        for item in node.body:
            if (
                isinstance(previous, ast.AnnAssign)
                and isinstance(previous.target, ast.Name)
                and isinstance(item, ast.Expr)
                and isinstance(item.value, ast.Constant)
                and isinstance(item.value.value, str)
            ):
                docs[f"{name}.{previous.target.id}"] = _clean(item.value.value)
            elif (
                isinstance(item, ast.FunctionDef)
                and any(isinstance(d, ast.Attribute) and d.attr == "property" for d in item.decorator_list)
                and (text := _clean(ast.get_docstring(item)))
            ):
                docs[f"{name}.{item.name}"] = text
            previous = item
        _messages(node.body, name, docs)


def _services(body: list[ast.stmt], package: str, docs: ProtoDocs) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Servicer"):
            service = f"{package}.{node.name.removesuffix('Servicer')}"
            if text := _clean(ast.get_docstring(node)):
                docs[service] = text
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    text := _clean(ast.get_docstring(item))
                ):
                    docs[f"{service}.{item.name}"] = text


def load_docs(files: Iterable[FileDescriptor]) -> ProtoDocs:
    """Comments of the messages, fields, enums, services and RPCs of the given proto files."""
    docs: ProtoDocs = {}
    for file in {f.name: f for f in files}.values():
        messages = _stub(file, ".pyi")
        if messages is not None:
            _messages(ast.parse(messages.read_text()).body, file.package, docs)
        services = _stub(file, "_grpc.pyi")
        if services is not None:
            _services(ast.parse(services.read_text()).body, file.package, docs)
    return docs


def docs_for(services: Iterable[ServiceDescriptor]) -> ProtoDocs:
    """Comments of the services' files and of every file they import."""
    files: dict[str, FileDescriptor] = {}
    pending = [service.file for service in services]
    while pending:
        file = pending.pop()
        if file.name not in files:
            files[file.name] = file
            pending.extend(file.dependencies)
    return load_docs(files.values())
