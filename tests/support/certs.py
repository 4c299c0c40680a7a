"""Certificates for TLS tests, made with the openssl command line (Debian's openssl package).

A fresh CA and leaf certificates valid for ``localhost`` and ``127.0.0.1``, good for one day, in a
test's temporary directory. Nothing here is ever committed or reused.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Leaf:
    """A certificate and its key, signed by ``ca``."""

    cert: Path
    key: Path
    ca: Path

    def env(self) -> dict[str, str]:
        """The GRPC_TLS_* variables that make a process use this certificate."""
        return {"GRPC_TLS_CERT": str(self.cert), "GRPC_TLS_KEY": str(self.key), "GRPC_TLS_CA": str(self.ca)}


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not installed (apt install openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA certificate (its key beside it as <name>.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_EC, "-days", "1", "-subj", f"/CN=mediasuite test {name}",
        "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt"


def make_leaf(ca: Path, name: str) -> Leaf:
    """A server-and-client certificate for localhost/127.0.0.1 signed by ``ca``."""
    directory = ca.parent
    ca_name = ca.stem
    (directory / f"{name}.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "req", *_EC, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", ca.name, "-CAkey", f"{ca_name}.key",
        "-CAcreateserial", "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip
    return Leaf(directory / f"{name}.crt", directory / f"{name}.key", ca)
