"""The admission webhook's certificates: a CA and a serving certificate it signs.

No I/O and no clock of its own (``now`` is passed in): the webhook (``controller.webhook``)
keeps them in one Secret of the operator's namespace, shared by every replica, and puts the
CA into the ValidatingWebhookConfiguration's ``caBundle`` — as Kueue's cert-controller does.
The CA lives ten years and stays; the serving certificate lives one year and is renewed,
signed by the same CA, a month before it expires or when it does not name a host the API
server uses, so the ``caBundle`` never changes under running replicas.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=3650)
SERVING_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")
"""The Secret's data keys (``tls.crt``/``tls.key`` make it a ``kubernetes.io/tls`` Secret)."""


class CertificateError(ValueError):
    """Certificate material that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """PEM bytes of the CA and of the serving certificate it signed."""

    ca_crt: bytes
    ca_key: bytes
    tls_crt: bytes
    tls_key: bytes

    def secret_data(self) -> dict[str, str]:
        """The Secret's ``data`` (base64)."""
        raw = dict(zip(KEYS, (self.ca_crt, self.ca_key, self.tls_crt, self.tls_key), strict=True))
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    @property
    def ca_bundle(self) -> str:
        """The ``caBundle`` of a webhook configuration: base64 of the CA's PEM."""
        return base64.b64encode(self.ca_crt).decode()


def from_secret_data(data: Mapping[str, str] | None) -> Bundle:
    """The bundle in a Secret's ``data``; :class:`CertificateError` if incomplete or unreadable."""
    data = data or {}
    missing = [k for k in KEYS if not data.get(k)]
    if missing:
        raise CertificateError(f"the Secret lacks {', '.join(missing)}")
    try:
        parts = [base64.b64decode(data[k], validate=True) for k in KEYS]
    except ValueError as exc:
        raise CertificateError(f"the Secret's data is not base64: {exc}") from None
    bundle = Bundle(*parts)
    _load_cert(bundle.ca_crt)
    _load_cert(bundle.tls_crt)
    return bundle


def _load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def new_bundle(hosts: Sequence[str], now: dt.datetime, ca: Bundle | None = None) -> Bundle:
    """A serving certificate for ``hosts``, signed by ``ca``'s CA (a new CA when None)."""
    if not hosts:
        raise CertificateError("a serving certificate needs at least one host")
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubatch-webhook-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca_crt, ca_key_pem = ca_cert.public_bytes(serialization.Encoding.PEM), _key_pem(ca_key)
    else:
        ca_crt, ca_key_pem = ca.ca_crt, ca.ca_key
        ca_cert = _load_cert(ca_crt)
        loaded = serialization.load_pem_private_key(ca_key_pem, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CertificateError("the CA key is not an EC key")
        ca_key = loaded
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVING_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Bundle(ca_crt, ca_key_pem, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def renewal_reason(bundle: Bundle, hosts: Sequence[str], now: dt.datetime) -> str | None:
    """Why the serving certificate must be renewed now (None: it is fine)."""
    cert = _load_cert(bundle.tls_crt)
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"it expires at {cert.not_valid_after_utc.isoformat()}"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it names no host"
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    lacking = [h for h in hosts if str(_normal(h)) not in have]
    if lacking:
        return f"it does not name {', '.join(lacking)}"
    try:
        cert.verify_directly_issued_by(_load_cert(bundle.ca_crt))
    except (ValueError, TypeError, InvalidSignature):
        return "another CA signed it"
    return None


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
