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


class StubKube:
    """Answers SelfSubjectAccessReviews: ``list`` allowed in ``readable`` ('' = all)."""

    def __init__(self, readable: set[str], status: int = 200) -> None:
        self.readable = readable
        self.status = status
        self.calls = 0

    async def request(self, method: str, path: str, **kw: object) -> dict[str, object]:
        from kubatch.adapters.kube import ApiError

        self.calls += 1
        if self.status != 200:
            raise ApiError(self.status, "Unauthorized", "{}")
        attrs = kw["body"]["spec"]["resourceAttributes"]  # type: ignore[index]
        return {"status": {"allowed": attrs.get("namespace", "") in self.readable}}


def test_access_is_asked_as_the_viewer_and_cached() -> None:
    import asyncio

    from kubatch.console.identity import AccessCache

    alice = who_from_headers("proxy", {"X-Forwarded-User": "alice"})
    cache = AccessCache()
    kube = StubKube({"a", "c"})
    got = asyncio.run(cache.readable(kube, alice, ["a", "b", "c"]))  # type: ignore[arg-type]
    assert got == frozenset({"a", "c"})
    calls = kube.calls  # the cluster-wide question, then one per namespace
    assert calls == 4
    assert asyncio.run(cache.readable(kube, alice, ["a", "b"])) == got  # type: ignore[arg-type]
    assert kube.calls == calls  # cached
    asyncio.run(cache.readable(kube, alice, ["a", "d"]))  # type: ignore[arg-type]
    assert kube.calls > calls  # a namespace never asked about: asked again
    admin = StubKube({""})
    assert asyncio.run(AccessCache().readable(admin, alice, ["a"])) is None  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):
        asyncio.run(AccessCache().readable(StubKube(set(), 401), alice, ["a"]))  # type: ignore[arg-type]
    assert asyncio.run(cache.readable(kube, who_from_headers("none", {}), ["a"])) is None  # type: ignore[arg-type]
