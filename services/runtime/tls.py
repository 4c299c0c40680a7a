"""Mutual TLS between the services, switched on by configuration.

Three variables name PEM files: this process's certificate chain (``GRPC_TLS_CERT``), its private
key (``GRPC_TLS_KEY``) and the CA that signs every certificate of the suite (``GRPC_TLS_CA``). Set
all three and the server requires and verifies a client certificate signed by that CA, and the
clients it opens present the certificate and verify the server's name against the CA; set none and
everything stays plaintext (the local default). The files are read when a server or channel is
built, so a certificate renewed on disk (a re-mounted Kubernetes Secret) is used by the next process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from services.runtime.config import ConfigError, Env

__all__ = ["TLS_VARIABLES", "TlsConfig"]

TLS_VARIABLES = ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CA")


@dataclass(frozen=True)
class TlsConfig:
    """Where this process's certificate, key and the suite's CA are (PEM files)."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_env(cls, env: Env) -> TlsConfig | None:
        """The mTLS files, or None (plaintext) when none is set; ConfigError when only some are."""
        cert = env.text("GRPC_TLS_CERT", "", "PEM certificate chain of this process; with KEY and CA: mTLS")
        key = env.text("GRPC_TLS_KEY", "", "PEM private key of GRPC_TLS_CERT")
        ca = env.text("GRPC_TLS_CA", "", "PEM CA that signs every certificate of the suite (peers verified)")
        values = dict(zip(TLS_VARIABLES, (cert, key, ca), strict=True))
        if not any(values.values()):
            return None
        for name, value in values.items():
            if not value:
                given = ", ".join(f"{n}={v}" for n, v in values.items() if v)
                raise ConfigError(
                    name, None, f"a file path ({given} is set): set all of {', '.join(TLS_VARIABLES)} or none"
                )
        return cls(Path(cert), Path(key), Path(ca))

    def _read(self, variable: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise OSError(
                f"cannot read {variable}={path} ({error.strerror}): mount the file or unset {variable}"
            ) from None

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server side: present our certificate, require a client certificate signed by the CA."""
        return grpc.ssl_server_credentials(
            [(self._read("GRPC_TLS_KEY", self.key), self._read("GRPC_TLS_CERT", self.cert))],
            root_certificates=self._read("GRPC_TLS_CA", self.ca),
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client side: verify the server against the CA, present our certificate."""
        return grpc.ssl_channel_credentials(
            root_certificates=self._read("GRPC_TLS_CA", self.ca),
            private_key=self._read("GRPC_TLS_KEY", self.key),
            certificate_chain=self._read("GRPC_TLS_CERT", self.cert),
        )
