"""`make certs` (services/cli/certs.py): what the development CA and certificates hold, and what
`mediasuite up --tls` gives each process."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.cli.certs import CLIENT, make_suite_certs, suite_certs
from services.cli.suite import suite_environment, tls_environment
from services.runtime.suite import PROCESSES


def test_one_ca_and_a_certificate_per_process_and_client(tmp_path: Path) -> None:
    leaves = make_suite_certs(tmp_path / "certs", days=2, hosts=("media.example",))
    assert set(leaves) == {*(p.name for p in PROCESSES), CLIENT}
    ca = x509.load_pem_x509_certificate((tmp_path / "certs" / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, leaf in leaves.items():
        cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"localhost", name, "media.example"} <= set(names.get_values_for_type(x509.DNSName))
        assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert stat.S_IMODE(leaf.key.stat().st_mode) == 0o600, "keys are private"
    assert stat.S_IMODE((tmp_path / "certs" / "ca.key").stat().st_mode) == 0o600


def test_a_missing_file_says_how_to_make_it(tmp_path: Path) -> None:
    make_suite_certs(tmp_path, days=1)
    (tmp_path / "batch.key").unlink()
    with pytest.raises(FileNotFoundError, match=r"batch\.key.*make certs"):
        suite_certs(tmp_path)


def test_each_child_gets_its_certificate_and_exports_metrics_over_tls(tmp_path: Path) -> None:
    leaves = make_suite_certs(tmp_path, days=1)
    env = suite_environment({}, tmp_path)
    extra = tls_environment(env, leaves["cache"])
    assert extra["GRPC_TLS_CERT"] == str(tmp_path / "cache.crt")
    assert extra["GRPC_TLS_KEY"] == str(tmp_path / "cache.key")
    assert extra["GRPC_TLS_CA"] == str(tmp_path / "ca.crt")
    assert extra["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == f"https://{env['MONITOR_ADDR']}"
    assert extra["OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE"] == str(tmp_path / "cache.crt")
    chosen = suite_environment({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://collector:4317"}, tmp_path)
    assert "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" not in tls_environment(chosen, leaves["cache"])
