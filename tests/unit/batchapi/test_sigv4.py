"""SigV4 verification against botocore's own signer: a signed request passes; tampering with
any signed part, an unknown key, a wrong secret, a foreign scope or a skewed clock fails with
AWS's error code."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kubatch.batchapi import sigv4
from kubatch.batchapi.errors import AuthError
from kubatch.batchapi.identity import Identity

WHO = Identity("AKIDEXAMPLE1", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "team-a", "111111111111")
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
ARN_PATH = "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A111111111111%3Ajob%2Fabc"


def lookup(key: str) -> Identity | None:
    return WHO if key == WHO.access_key else None


def signed(
    method: str = "POST",
    url: str = "http://127.0.0.1:8000/v1/submitjob",
    body: bytes = b'{"jobName": "x"}',
    *,
    secret: str = WHO.secret,
    region: str = "us-east-1",
    service: str = "batch",
    when: datetime = NOW,
) -> sigv4.Request:
    """A request signed by botocore, as the server receives it."""
    req = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/x-amz-json-1.1"}
    )
    auth = SigV4Auth(Credentials(WHO.access_key, secret), service, region)
    auth._timestamp = when.strftime("%Y%m%dT%H%M%SZ")  # type: ignore[attr-defined]

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return when

        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]
            return when.replace(tzinfo=None)

    import botocore.auth

    original = botocore.auth.datetime.datetime
    botocore.auth.datetime.datetime = Frozen  # type: ignore[misc]
    try:
        auth.add_auth(req)
    finally:
        botocore.auth.datetime.datetime = original  # type: ignore[misc]
    parts = urlsplit(req.url)
    headers = [("Host", parts.netloc), *((k, str(v)) for k, v in req.headers.items())]
    data = req.body if isinstance(req.body, bytes) else (req.body or "").encode()
    return sigv4.Request(method, parts.path, parts.query, headers, data)


def fails(req: sigv4.Request, code: str, *, now: datetime = NOW) -> str:
    with pytest.raises(AuthError) as info:
        sigv4.verify(req, lookup, now, "us-east-1")
    assert info.value.code == code, info.value.message
    assert info.value.status in (400, 403)
    return info.value.message


def with_header(req: sigv4.Request, name: str, value: str) -> sigv4.Request:
    headers = [(k, value if k.lower() == name else v) for k, v in req.headers]
    return dataclasses.replace(req, headers=headers)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "http://127.0.0.1:8000/v1/submitjob", b'{"jobName": "x"}'),
        ("POST", "http://localhost:1234/v1/describejobs", b""),
        ("GET", "http://127.0.0.1:8000" + ARN_PATH, b""),
        ("DELETE", "http://127.0.0.1:8000" + ARN_PATH + "?tagKeys=a%20b&tagKeys=c", b""),
    ],
    ids=["post", "empty-body", "encoded-arn-path", "repeated-query"],
)
def test_botocore_signatures_verify(method: str, url: str, body: bytes) -> None:
    assert sigv4.verify(signed(method, url, body), lookup, NOW, "us-east-1") == WHO


def test_each_signed_part_is_protected() -> None:
    good = signed("DELETE", "http://127.0.0.1:8000" + ARN_PATH + "?tagKeys=a", b"")
    bad = "InvalidSignatureException"
    fails(dataclasses.replace(good, method="GET"), bad)
    fails(dataclasses.replace(good, raw_path=good.raw_path.replace("abc", "abd")), bad)
    fails(dataclasses.replace(good, raw_query="tagKeys=b"), bad)
    fails(dataclasses.replace(good, raw_query=""), bad)
    fails(dataclasses.replace(good, body=b"{}"), bad)
    post = signed()
    fails(dataclasses.replace(post, body=post.body + b" "), bad)
    signed_names = post.header_values("authorization")[0].split("SignedHeaders=")[1].split(",")[0]
    for name in signed_names.split(";"):
        value = post.header_values(name)[0]
        tampered = (
            "127.0.0.2:8000" if name == "host" else value[:-1] + ("0" if value[-1] != "0" else "1")
        )
        fails(with_header(post, name, tampered), bad)
    auth = post.header_values("authorization")[0]
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    fails(with_header(post, "authorization", flipped), bad)


def test_keys_and_scope() -> None:
    fails(signed(secret="not-the-secret"), "InvalidSignatureException")
    req = signed()
    auth = req.header_values("authorization")[0]
    fails(
        with_header(req, "authorization", auth.replace(WHO.access_key, "AKIDUNKNOWN1")),
        "UnrecognizedClientException",
    )
    assert "region" in fails(signed(region="eu-west-1"), "InvalidSignatureException")
    assert "service" in fails(signed(service="s3"), "InvalidSignatureException")
    fails(
        with_header(req, "authorization", auth.replace("/20260304/", "/20260305/")),
        "InvalidSignatureException",
    )


def test_clock_skew_over_five_minutes_is_refused() -> None:
    assert sigv4.verify(signed(when=NOW - timedelta(minutes=4)), lookup, NOW, "us-east-1") == WHO
    assert "expired" in fails(signed(when=NOW - timedelta(minutes=6)), "InvalidSignatureException")
    assert "not yet current" in fails(
        signed(when=NOW + timedelta(minutes=6)), "InvalidSignatureException"
    )


def test_missing_or_malformed_authorization() -> None:
    req = signed()
    bare = dataclasses.replace(
        req, headers=[(k, v) for k, v in req.headers if k.lower() != "authorization"]
    )
    fails(bare, "MissingAuthenticationTokenException")
    fails(with_header(req, "authorization", "Basic dXNlcjpwdw=="), "IncompleteSignatureException")
    fails(
        with_header(req, "authorization", "AWS4-HMAC-SHA256 Credential=x"),
        "IncompleteSignatureException",
    )
    no_date = dataclasses.replace(
        req, headers=[(k, v) for k, v in req.headers if k.lower() != "x-amz-date"]
    )
    fails(no_date, "InvalidSignatureException")


def test_canonical_path_encodes_once_more() -> None:
    assert sigv4.canonical_path("/v1/tags/arn%3Aa") == "/v1/tags/arn%253Aa"
    assert sigv4.canonical_path("") == "/"
    assert sigv4.canonical_query("b=2&a=1&a=0") == "a=0&a=1&b=2"
