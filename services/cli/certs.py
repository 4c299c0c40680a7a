"""Development certificates for mutual TLS between the suite's processes (``make certs``).

One CA and, for every process of the suite plus an operator ``client``, a certificate that is
good for both ends of a connection (serverAuth and clientAuth: each process serves and calls),
valid for ``localhost``, ``127.0.0.1`` and ``::1`` and the process's name (its Kubernetes Service).
Keys are ECDSA P-256, written 0600. Made with the ``cryptography`` package; never committed
(``certs/`` is git-ignored). For production use certificates from your own CA (cert-manager, say).

Tests use the same functions to make certificates signed by another CA, or already expired.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.runtime.suite import PROCESSES
from services.runtime.tls import TlsConfig

__all__ = ["CLIENT", "Leaf", "make_ca", "make_leaf", "make_suite_certs", "suite_certs"]

CLIENT = "client"  # the certificate of people and tools (mediactl, tests, `mediasuite up` itself)
_LOOPBACK_NAMES = ("localhost",)
_LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Leaf:
    """A certificate and its key (PEM files), and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path

    def env(self) -> dict[str, str]:
        """The GRPC_TLS_* variables that make a process use this certificate."""
        return {"GRPC_TLS_CERT": str(self.cert), "GRPC_TLS_KEY": str(self.key), "GRPC_TLS_CA": str(self.ca)}

    def tls_config(self) -> TlsConfig:
        """The runtime's mTLS settings for a client or server presenting this certificate."""
        return TlsConfig(self.cert, self.key, self.ca)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key made by `mediasuite certs`")
    return key


def make_ca(directory: Path, name: str = "ca", *, days: int = 365) -> Path:
    """A self-signed CA (``<name>.crt``, its key ``<name>.key`` beside it); the certificate's path."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mediasuite development CA ({name})")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / f"{name}.key", key)
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_leaf(
    ca: Path,
    name: str,
    *,
    days: int = 365,
    hosts: tuple[str, ...] = (),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Leaf:
    """A server-and-client certificate ``<name>.crt`` (+ ``.key``) beside ``ca``, signed by it.

    Valid for localhost, 127.0.0.1, ::1, ``name`` and ``hosts``; for ``days`` from now unless
    ``not_before``/``not_after`` say otherwise (tests make expired ones that way).
    """
    directory = ca.parent
    ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
    ca_key = _load_key(ca.with_suffix(".key"))
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    start = not_before or now - datetime.timedelta(minutes=5)
    end = not_after or now + datetime.timedelta(days=days)
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys((*_LOOPBACK_NAMES, name, *hosts))]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _LOOPBACK_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / f"{name}.key", key)
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Leaf(path, directory / f"{name}.key", ca)


def suite_certs(directory: Path) -> dict[str, Leaf]:
    """The certificate of every process and of the client in ``directory`` (as make_suite_certs
    wrote them); FileNotFoundError naming what is missing and how to make it."""
    names = [*(p.name for p in PROCESSES), CLIENT]
    leaves = {n: Leaf(directory / f"{n}.crt", directory / f"{n}.key", directory / "ca.crt") for n in names}
    missing = [
        str(path) for leaf in leaves.values() for path in (leaf.cert, leaf.key, leaf.ca) if not path.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"missing certificate files: {', '.join(sorted(set(missing)))}; "
            f"make them with `make certs` (or `mediasuite certs --dir {directory}`)"
        )
    return leaves


def make_suite_certs(directory: Path, *, days: int = 365, hosts: tuple[str, ...] = ()) -> dict[str, Leaf]:
    """A new CA in ``directory`` and a certificate for every process and for the client."""
    ca = make_ca(directory, "ca", days=days)
    names = [*(p.name for p in PROCESSES), CLIENT]
    return {name: make_leaf(ca, name, days=days, hosts=hosts) for name in names}
