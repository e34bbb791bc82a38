"""The webhook's certificates: made, stored, read back, renewed with the same CA."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from kubatch.controller import certs

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOSTS = ["kubatch-webhook", "kubatch-webhook.sys.svc", "127.0.0.1"]


def names(pem: bytes) -> set[str]:
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    return dns | {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def test_a_new_bundle_names_every_host_and_chains_to_its_ca() -> None:
    b = certs.new_bundle(HOSTS, NOW)
    assert names(b.tls_crt) == set(HOSTS)
    ca = x509.load_pem_x509_certificate(b.ca_crt)
    leaf = x509.load_pem_x509_certificate(b.tls_crt)
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc - NOW <= certs.SERVING_LIFETIME
    assert ca.not_valid_after_utc - NOW >= dt.timedelta(days=3000)
    assert certs.renewal_reason(b, HOSTS, NOW) is None
    # Python's own TLS stack takes the pair and trusts the chain.
    with tempfile.TemporaryDirectory() as tmp:
        pair = Path(tmp) / "pair.pem"
        pair.write_bytes(b.tls_crt + b.tls_key)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(pair)
        client = ssl.create_default_context(cadata=b.ca_crt.decode())
        assert client.verify_mode == ssl.CERT_REQUIRED


def test_secret_data_round_trip_and_ca_bundle() -> None:
    b = certs.new_bundle(HOSTS, NOW)
    data = b.secret_data()
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert certs.from_secret_data(data) == b
    assert base64.b64decode(b.ca_bundle) == b.ca_crt


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "lacks ca.crt"),
        ({"ca.crt": "eA==", "ca.key": "eA=="}, "lacks tls.crt, tls.key"),
        (dict.fromkeys(certs.KEYS, "!!"), "not base64"),
        (dict.fromkeys(certs.KEYS, "eA=="), "not a PEM certificate"),
    ],
    ids=["empty", "partial", "not-base64", "not-pem"],
)
def test_unusable_secret_data_is_refused(data: dict[str, str] | None, match: str) -> None:
    with pytest.raises(certs.CertificateError, match=match):
        certs.from_secret_data(data)


def test_renewal_keeps_the_ca_and_happens_a_month_before_expiry_or_for_a_new_host() -> None:
    b = certs.new_bundle(HOSTS, NOW)
    later = NOW + certs.SERVING_LIFETIME - dt.timedelta(days=29)
    why = certs.renewal_reason(b, HOSTS, later)
    assert why is not None
    assert "expires" in why
    assert certs.renewal_reason(b, HOSTS, NOW + dt.timedelta(days=300)) is None
    why = certs.renewal_reason(b, [*HOSTS, "10.0.0.7"], NOW)
    assert why == "it does not name 10.0.0.7"
    renewed = certs.new_bundle([*HOSTS, "10.0.0.7"], later, ca=b)
    assert renewed.ca_crt == b.ca_crt
    assert renewed.ca_key == b.ca_key
    assert renewed.tls_crt != b.tls_crt
    assert certs.renewal_reason(renewed, [*HOSTS, "10.0.0.7"], later) is None
    other = certs.new_bundle(HOSTS, NOW)
    mixed = certs.Bundle(other.ca_crt, other.ca_key, b.tls_crt, b.tls_key)
    assert certs.renewal_reason(mixed, HOSTS, NOW) == "another CA signed it"


def test_a_certificate_needs_a_host() -> None:
    with pytest.raises(certs.CertificateError, match="at least one host"):
        certs.new_bundle([], NOW)
