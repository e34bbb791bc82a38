"""AWS Signature Version 4: verification of a signed request (service ``batch``).

Pure: the caller passes the request's parts, the access-key lookup and the current time. The
canonical request is built the way AWS specifies it for every service but S3 (and the way
botocore signs): the path is normalised and URI-encoded once more (``%3A`` becomes ``%253A``),
query parameters are decoded, re-encoded and sorted, the signed headers' values are trimmed,
and the payload hash is the SHA-256 of the body actually received. ``host`` and the request
date must be signed; a request more than five minutes away from the server's clock is refused
the way AWS refuses it.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from kubatch.batchapi.errors import (
    INCOMPLETE_SIGNATURE,
    INVALID_SIGNATURE,
    MISSING_TOKEN,
    UNRECOGNIZED_CLIENT,
    AuthError,
)
from kubatch.batchapi.identity import Identity

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "batch"
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
_FIELD = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")


@dataclass(frozen=True, slots=True)
class Request:
    """What the signature covers, exactly as received."""

    method: str
    raw_path: str
    """Path as sent, still percent-encoded, without the query."""
    raw_query: str
    headers: Sequence[tuple[str, str]]
    """Every header line (name, value) as received; names in any case."""
    body: bytes

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]


@dataclass(frozen=True, slots=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """Pure: the parts of an ``Authorization: AWS4-HMAC-SHA256 …`` header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            f"Unsupported authorization type {algorithm[:40]!r}: only {ALGORITHM} is accepted",
            code=INCOMPLETE_SIGNATURE,
            status=400,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        m = _FIELD.fullmatch(part)
        if m is None:
            raise AuthError(
                f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                f"parameters; cannot parse {part.strip()[:80]!r}",
                code=INCOMPLETE_SIGNATURE,
                status=400,
            )
        fields[m.group(1)] = m.group(2)
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AuthError(
            f"Authorization header requires {', '.join(missing)}",
            code=INCOMPLETE_SIGNATURE,
            status=400,
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise AuthError(
            "Credential must be <access key>/<date>/<region>/<service>/aws4_request",
            code=INCOMPLETE_SIGNATURE,
            status=400,
        )
    return Authorization(
        access_key=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        terminator=scope[4],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def canonical_path(raw_path: str) -> str:
    """Pure: the normalised, once-more URI-encoded path (non-S3 SigV4)."""
    path = raw_path or "/"
    normalized = posixpath.normpath(path)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    return quote(normalized, safe="/~")


def canonical_query(raw_query: str) -> str:
    """Pure: every parameter decoded, re-encoded (RFC 3986) and sorted."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _trim(value: str) -> str:
    return " ".join(value.split())


def canonical_request(req: Request, signed: Sequence[str], payload_hash: str) -> str:
    """Pure: the canonical request of SigV4."""
    lines = []
    for name in signed:
        values = req.header_values(name)
        lines.append(f"{name}:{','.join(_trim(v) for v in values)}")
    return "\n".join(
        [
            req.method.upper(),
            canonical_path(req.raw_path),
            canonical_query(req.raw_query),
            "\n".join(lines) + "\n",
            ";".join(signed),
            payload_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Pure: the derived key ``kSigning``."""
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, auth: Authorization, amz_date: str, creq: str) -> str:
    """Pure: the hex signature of a canonical request."""
    scope = f"{auth.date}/{auth.region}/{auth.service}/{auth.terminator}"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret, auth.date, auth.region, auth.service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _invalid(message: str) -> AuthError:
    return AuthError(message, code=INVALID_SIGNATURE)


def _request_time(req: Request, auth: Authorization) -> tuple[str, datetime]:
    values = req.header_values("x-amz-date")
    if values:
        if "x-amz-date" not in auth.signed_headers:
            raise _invalid("x-amz-date must be one of the signed headers")
        text = values[0].strip()
        try:
            when = datetime.strptime(text, AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise _invalid(
                f"x-amz-date {text[:40]!r} is not of the form YYYYMMDDTHHMMSSZ"
            ) from None
        return text, when
    raise AuthError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header; "
        "kubatch accepts X-Amz-Date",
        code=INCOMPLETE_SIGNATURE,
        status=400,
    )


def verify(
    req: Request,
    lookup: Callable[[str], Identity | None],
    now: datetime,
    region: str,
) -> Identity:
    """Pure: the identity of a correctly signed request; an :class:`AuthError` otherwise."""
    values = req.header_values("authorization")
    if not values:
        raise AuthError("Missing Authentication Token", code=MISSING_TOKEN)
    if len(values) > 1:
        raise AuthError("more than one Authorization header", code=INCOMPLETE_SIGNATURE, status=400)
    auth = parse_authorization(values[0])
    identity = lookup(auth.access_key)
    if identity is None:
        raise AuthError(
            "The security token included in the request is invalid.", code=UNRECOGNIZED_CLIENT
        )
    signed = list(auth.signed_headers)
    if signed != sorted(signed) or any(h != h.lower() or not h for h in signed):
        raise _invalid("SignedHeaders must be lower case and sorted")
    if "host" not in signed:
        raise _invalid("host must be one of the signed headers")
    for name in signed:
        if not req.header_values(name):
            raise _invalid(f"signed header {name!r} is not in the request")
    if auth.service != SERVICE:
        raise _invalid(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if auth.region != region:
        raise _invalid(
            f"Credential should be scoped to a valid region, not '{auth.region[:40]}'. "
            f"This endpoint serves region '{region}'."
        )
    if auth.terminator != "aws4_request":
        raise _invalid("Credential should be scoped with a valid terminator: 'aws4_request'.")
    amz_date, when = _request_time(req, auth)
    if auth.date != amz_date[:8]:
        raise _invalid(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date[:20]}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    body_hash = hashlib.sha256(req.body).hexdigest()
    declared = req.header_values("x-amz-content-sha256")
    if declared and declared[0].strip() != body_hash:
        raise _invalid("x-amz-content-sha256 does not match the SHA-256 of the body")
    expected = signature(identity.secret, auth, amz_date, canonical_request(req, signed, body_hash))
    if not hmac.compare_digest(expected, auth.signature):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    if when < now - MAX_SKEW:
        raise _invalid(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} - 5 min.)"
        )
    if when > now + MAX_SKEW:
        raise _invalid(
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} + 5 min.)"
        )
    return identity
