"""Who the viewer is: bearer token, auth-proxy headers, or the console itself."""

from __future__ import annotations

import pytest

from kubatch.console.identity import Unauthenticated, form_token, ssar_body, who_from_headers


def test_modes() -> None:
    assert who_from_headers("none", {}).mode == "none"
    who = who_from_headers("token", {"Authorization": "Bearer abc"})
    assert who.token == "abc"
    assert "abc" not in who.key
    assert "abc" not in who.label
    proxy = who_from_headers(
        "proxy", {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "dev, ops,"}
    )
    assert (proxy.user, proxy.groups) == ("alice", ("dev", "ops"))
    custom = who_from_headers("proxy", {"X-Remote-User": "bob"}, user_header="X-Remote-User")
    assert custom.user == "bob"


@pytest.mark.parametrize(
    ("mode", "headers"),
    [
        ("token", {}),
        ("token", {"Authorization": "Basic abc"}),
        ("token", {"Authorization": "Bearer "}),
        ("proxy", {}),
        ("proxy", {"X-Forwarded-User": "  "}),
    ],
)
def test_a_request_without_an_identity_is_refused(mode: str, headers: dict[str, str]) -> None:
    with pytest.raises(Unauthenticated):
        who_from_headers(mode, headers)


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown --auth mode"):
        who_from_headers("open", {})


def test_form_tokens_differ_by_viewer_and_action() -> None:
    alice = who_from_headers("proxy", {"X-Forwarded-User": "alice"})
    bob = who_from_headers("proxy", {"X-Forwarded-User": "bob"})
    assert form_token(b"s", alice, "t/a/j") != form_token(b"s", bob, "t/a/j")
    assert form_token(b"s", alice, "t/a/j") != form_token(b"s", alice, "t/a/k")
    assert form_token(b"s", alice, "t/a/j") == form_token(b"s", alice, "t/a/j")


def test_access_review_body() -> None:
    attrs = ssar_body("list", "ns1")["spec"]["resourceAttributes"]  # type: ignore[index]
    assert attrs == {
        "verb": "list",
        "group": "kubatch.io",
        "resource": "batchjobs",
        "namespace": "ns1",
    }
    assert "namespace" not in ssar_body("list", "")["spec"]["resourceAttributes"]  # type: ignore[index]
