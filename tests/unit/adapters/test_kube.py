"""The one Kubernetes client against a scripted API server: headers, identities, writes,
pagination, 401 re-login, errors."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.adapters.fake_api import FakeApi, Reply, Seen, config, kube_for, pod, status

from kubatch.adapters.kube import (
    APPLY_PATCH,
    BATCHJOBS,
    CRDS,
    JOBS,
    MERGE_PATCH,
    NODES,
    PODS,
    ApiError,
    Kube,
    ListReader,
    Resource,
    decode,
    decode_list,
)


def host(api: FakeApi) -> str:
    return f"http://127.0.0.1:{api.port}"


@pytest.mark.parametrize(
    ("res", "namespace", "name", "sub", "path"),
    [
        (PODS, "ns", None, "", "/api/v1/namespaces/ns/pods"),
        (PODS, None, None, "", "/api/v1/pods"),
        (PODS, "ns", "p 1", "status", "/api/v1/namespaces/ns/pods/p%201/status"),
        (NODES, "ignored", "n", "", "/api/v1/nodes/n"),
        (JOBS, "ns", "j", "", "/apis/batch/v1/namespaces/ns/jobs/j"),
        (CRDS, None, "x.io", "", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.io"),
    ],
    ids=["collection", "all-namespaces", "subresource", "cluster-scoped", "group", "crd"],
)
def test_resource_paths(
    res: Resource, namespace: str | None, name: str | None, sub: str, path: str
) -> None:
    assert res.path(namespace, name, sub) == path


def test_api_version() -> None:
    assert PODS.api_version == "v1"
    assert BATCHJOBS.api_version == "kubatch.io/v1alpha1"


async def test_login_token_and_identities(api: FakeApi, kube: Kube) -> None:
    api.on("GET", "/api/v1/namespaces/ns/pods/p", Reply(body=pod("p", "1")))
    assert (await kube.get(PODS, "p", "ns"))["metadata"]["name"] == "p"
    alice = kube.impersonating(
        "alice",
        groups=["team-a", "system:authenticated"],
        extra={"scopes.example.io/x": ["a b"]},
    )
    await alice.get(PODS, "p", "ns")
    caller = kube.with_bearer_token("caller-token")
    await caller.get(PODS, "p", "ns")
    both = caller.impersonating("bob")
    await both.get(PODS, "p", "ns")
    plain, imp, tok, tok_imp = api.seen
    assert plain.headers["Authorization"] == "Bearer t0"
    assert "Impersonate-User" not in plain.headers
    assert imp.headers["Authorization"] == "Bearer t0"
    assert imp.headers["Impersonate-User"] == "alice"
    assert imp.headers.getall("Impersonate-Group") == ["team-a", "system:authenticated"]
    assert imp.headers["Impersonate-Extra-scopes.example.io%2Fx"] == "a b"
    assert tok.headers["Authorization"] == "Bearer caller-token"
    assert "Impersonate-User" not in tok.headers
    assert tok_imp.headers["Authorization"] == "Bearer caller-token"
    assert tok_imp.headers["Impersonate-User"] == "bob"


async def test_derived_clients_share_pool_counters_and_hook(api: FakeApi) -> None:
    api.on("POST", "/api/v1/namespaces/ns/pods", Reply(201, pod("p", "2")))
    writes: list[tuple[str, str]] = []
    kube = kube_for(host(api), on_write=lambda verb, res: writes.append((verb, res)))
    alice = kube.impersonating("alice")
    token = kube.with_bearer_token("x")
    assert await alice.session() is await kube.session()
    assert await token.session() is await kube.session()
    await alice.create(PODS, pod("p", ""), "ns")
    await token.create(PODS, pod("p", ""), "ns")
    assert kube.counters.writes == 2
    assert writes == [("create", "pods"), ("create", "pods")]
    await alice.close()  # a derived client does not own the pool
    session = await kube.session()
    assert not session.closed
    await kube.close()
    assert session.closed


async def test_bearer_token_never_rides_on_a_client_certificate() -> None:
    kube = Kube(config("http://127.0.0.1:1", cert_file="/x/client.crt", key_file="/x/c.key"))
    caller = kube.with_bearer_token("caller")
    try:
        assert await caller.session() is not await kube.session()
        assert await kube.impersonating("a").session() is await kube.session()
    finally:
        await caller.close()
        await kube.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda k: k.impersonating(""),
        lambda k: k.impersonating("  "),
        lambda k: k.impersonating("a", groups=["ok", ""]),
        lambda k: k.with_bearer_token(""),
        lambda k: k.with_bearer_token("a\nb"),
    ],
    ids=["no-user", "blank-user", "blank-group", "no-token", "multi-line-token"],
)
def test_bad_identities_are_refused(make: Any) -> None:
    kube = Kube(config("http://127.0.0.1:1"))
    with pytest.raises(ValueError, match=r"impersonating|token"):
        make(kube)


async def test_writes_are_counted_and_shaped(api: FakeApi) -> None:
    api.on("PATCH", "/apis/batch/v1/namespaces/ns/jobs/j/status", Reply(body={}))
    api.on("DELETE", "/api/v1/namespaces/ns/pods/p", Reply(body={}))
    api.on("DELETE", "/api/v1/namespaces/ns/pods/gone", Reply(404, status(404, "NotFound", "x")))
    api.on(
        "PATCH",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.io",
        Reply(body={"metadata": {"name": "a.io"}}),
    )
    writes: list[tuple[str, str]] = []
    kube = kube_for(host(api), on_write=lambda verb, res: writes.append((verb, res)))
    try:
        await kube.patch(JOBS, "j", {"status": {"x": 1}}, "ns", status=True)
        await kube.delete(PODS, "p", "ns", grace_period=0)
        await kube.delete(PODS, "gone", "ns")  # a missing object is not an error
        await kube.apply(CRDS, {"metadata": {"name": "a.io"}, "spec": {}}, field_manager="t")
        with pytest.raises(ValueError, match=r"no metadata\.name"):
            await kube.apply(CRDS, {"metadata": {}})
    finally:
        await kube.close()
    patch, delete, _, apply = api.seen
    assert patch.headers["Content-Type"] == MERGE_PATCH
    assert patch.body == {"status": {"x": 1}}
    assert delete.body == {"propagationPolicy": "Background", "gracePeriodSeconds": 0}
    assert apply.headers["Content-Type"] == APPLY_PATCH
    assert apply.query == {"fieldManager": "t", "force": "true"}
    assert writes == [
        ("patch", "jobs/status"),
        ("delete", "pods"),
        ("delete", "pods"),
        ("patch", "customresourcedefinitions"),
    ]
    assert kube.counters.writes == 4


async def test_errors_carry_the_status_message(api: FakeApi, kube: Kube) -> None:
    api.on(
        "GET",
        "/api/v1/namespaces/ns/pods/p",
        Reply(403, status(403, "Forbidden", 'pods "p" is forbidden: User "x" cannot get')),
    )
    with pytest.raises(ApiError) as info:
        await kube.get(PODS, "p", "ns")
    assert info.value.forbidden
    assert info.value.status == 403
    assert info.value.message == 'pods "p" is forbidden: User "x" cannot get'
    assert not (info.value.not_found)
    assert not (info.value.conflict)
    assert not (info.value.gone)


async def test_a_401_logs_in_again_once(api: FakeApi) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.headers.get("Authorization") == "Bearer fresh":
            return Reply(body=pod("p", "1"))
        return Reply(401, status(401, "Unauthorized", "expired"))

    api.on("GET", "/api/v1/namespaces/ns/pods/p", answer)
    cfg = config(host(api), token="stale")
    logins: list[int] = []

    async def relogin() -> None:
        logins.append(1)
        cfg.api_key["BearerToken"] = "Bearer fresh"

    kube = Kube(cfg, relogin=relogin)
    try:
        assert (await kube.get(PODS, "p", "ns"))["metadata"]["name"] == "p"
        assert logins == [1]
        cfg.api_key["BearerToken"] = "Bearer revoked"
        logins.clear()

        async def useless() -> None:
            logins.append(1)

        kube._relogin = useless
        with pytest.raises(ApiError) as info:
            await kube.get(PODS, "p", "ns")
        assert info.value.status == 401
        assert logins == [1]  # one re-login, then the 401 is the answer
        # a caller's token is never renewed with the operator's login
        with pytest.raises(ApiError):
            await kube.with_bearer_token("someone").get(PODS, "p", "ns")
        assert logins == [1]
    finally:
        await kube.close()


async def test_list_pages_selectors_and_expired_continue(api: FakeApi, kube: Kube) -> None:
    pages = iter(
        [
            Reply(body={"metadata": {"continue": "c1"}, "items": [pod("a", "5")]}),
            Reply(410, status(410, "Expired", "The provided continue parameter is too old")),
            Reply(body={"metadata": {"continue": "c2"}, "items": [pod("a", "5")]}),
            Reply(body={"metadata": {"resourceVersion": "9"}, "items": [pod("b", "6")]}),
        ]
    )
    api.on("GET", "/api/v1/pods", lambda _s: next(pages))
    items, version = await kube.list_with_version(PODS, labels="a=b", fields="x=y", page=1)
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert version == "9"
    queries = [s.query for s in api.seen]
    assert queries[0] == {"labelSelector": "a=b", "fieldSelector": "x=y", "limit": "1"}
    assert queries[1]["continue"] == "c1"
    assert "continue" not in queries[2]  # the list started over
    assert queries[3]["continue"] == "c2"
    assert kube.counters.reads == 4


def _paged_or_cached(seen: Seen) -> Reply:
    """Three pods a, b, c: paged one by one from "etcd", or whole from the watch cache."""
    if seen.query.get("resourceVersion") == "0":
        return Reply(body={"metadata": {"resourceVersion": "8"},
                           "items": [pod(n, "8") for n in "abc"]})  # fmt: skip
    at = {"": 0, "c1": 1, "c2": 2}[seen.query.get("continue", "")]
    more = {"continue": f"c{at + 1}", "remainingItemCount": 2 - at} if at < 2 else {}
    return Reply(
        body={"metadata": {"resourceVersion": "7", **more}, "items": [pod("abc"[at], "7")]}
    )


async def test_a_cached_list_comes_whole_from_the_watch_cache_after_its_first_page(
    api: FakeApi, kube: Kube
) -> None:
    api.on("GET", "/api/v1/pods", _paged_or_cached)
    items, version = await kube.list_with_version(PODS, labels="a=b", page=1, cached=True)
    assert ([i["metadata"]["name"] for i in items], version) == (["a", "b", "c"], "8")
    assert [s.query for s in api.seen] == [
        {"labelSelector": "a=b", "limit": "1"},
        {"labelSelector": "a=b", "resourceVersion": "0"},
    ]


@pytest.mark.parametrize("cached", [False, True], ids=["consistent", "cached-but-too-many"])
async def test_a_list_pages_from_etcd_unless_cached_and_small_enough(
    api: FakeApi, kube: Kube, cached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kubatch.adapters.kube.CACHED_LIST_MAX", 1)  # 2 remain after page 1
    api.on("GET", "/api/v1/pods", _paged_or_cached)
    items, version = await kube.list_with_version(PODS, page=1, cached=cached)
    assert ([i["metadata"]["name"] for i in items], version) == (["a", "b", "c"], "7")
    assert [s.query.get("resourceVersion") for s in api.seen] == [None, None, None]


def test_a_large_answer_is_decoded_with_the_collector_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    states: list[bool] = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda raw: states.append(gc.isenabled()) or real(raw))
    small = json.dumps({"items": []}).encode()
    large = json.dumps({"items": ["x" * 100] * 5000}).encode()
    assert decode(small) == {"items": []}
    assert len(decode(large)["items"]) == 5000
    assert states == [True, False]
    assert gc.isenabled()


def _drop_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {"name": obj["metadata"]["name"]}


@pytest.mark.parametrize(
    "text",
    [
        '{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[ITEMS]}',
        '{"apiVersion":"v1","items":[ITEMS],"kind":"PodList","metadata":{"resourceVersion":"9"}}',
        ' {\n "metadata" : {"resourceVersion": "9"} ,\n "items" : [ ITEMS ] \n} \n',
    ],
    ids=["typed-order", "unstructured-order", "indented"],
)
def test_a_list_is_trimmed_item_by_item_as_it_is_decoded(text: str) -> None:
    """Only what the trim keeps of each item is ever held; the rest of the answer is as
    json.loads makes it, whatever the key order and spacing."""
    objs = [pod(n, "9") for n in ("a", "b", "c")]
    raw = text.replace("ITEMS", " , ".join(json.dumps(o) for o in objs)).encode()
    seen: list[str] = []

    def trim(obj: dict[str, Any]) -> dict[str, Any]:
        seen.append(obj["metadata"]["name"])
        return _drop_fields(obj)

    doc = decode_list(raw, trim)
    whole = json.loads(raw)
    assert doc["items"] == [{"name": n} for n in "abc"]
    assert seen == ["a", "b", "c"]  # each item trimmed once
    assert {k: v for k, v in doc.items() if k != "items"} == {
        k: v for k, v in whole.items() if k != "items"
    }


@pytest.mark.parametrize(
    "text",
    ['{"items":[]}', "{}", "[1,2]", '{"items":"x"}', '{"items":[{"metadata":{"name":"a"}}]} x'],
    ids=["empty-items", "no-items", "not-an-object", "items-not-a-list", "trailing-text"],
)
def test_any_other_answer_decodes_as_json_does(text: str) -> None:
    if text.endswith(" x"):
        with pytest.raises(ValueError, match="Extra data"):
            decode_list(text.encode(), _drop_fields)
        return
    expected = json.loads(text)
    if isinstance(expected, dict) and isinstance(expected.get("items"), list):
        expected["items"] = [_drop_fields(x) for x in expected["items"]]
    assert decode_list(text.encode(), _drop_fields) == expected


_scalars = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)  # fmt: skip


@given(
    items=st.lists(st.dictionaries(st.text(max_size=4), _values, max_size=4), max_size=6),
    extra=st.dictionaries(st.sampled_from(["kind", "apiVersion", "metadata", "x"]), _values),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    indent=st.sampled_from([None, 1]),
)
def test_a_list_read_in_pieces_is_the_list(
    items: list[dict[str, Any]], extra: dict[str, Any], cuts: list[int], indent: int | None
) -> None:
    """Cut anywhere (inside a number, a string, an escape), the text reads as json.loads
    reads it whole; each item is handed to the trim once, in order."""
    text = json.dumps({**extra, "items": items}, indent=indent)
    reader = ListReader(lambda obj: {"kept": obj})
    at = 0
    for cut in sorted({c % (len(text) + 1) for c in cuts}):
        reader.feed(text[at:cut])
        at = cut
    reader.feed(text[at:])
    doc = reader.close()
    assert doc == {**extra, "items": [{"kept": x} for x in items]}


def test_the_items_of_a_list_share_equal_keys_and_short_strings() -> None:
    """Each item is decoded on its own: equal keys and short strings are still one object
    (100,000 BatchJobs held a third more without it); long strings are not looked up."""
    long = "x" * 100
    objs = [{"metadata": {"name": f"j{i}", "namespace": "team"}, "note": long} for i in range(3)]
    text = json.dumps({"items": objs})
    doc = decode_list(text.encode(), lambda obj: obj)
    a, b = doc["items"][0], doc["items"][2]
    assert a == objs[0]
    assert b == objs[2]
    assert next(iter(a)) is next(iter(b))  # the key "metadata"
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a["note"] is not b["note"]


def test_a_list_cut_short_is_refused() -> None:
    reader = ListReader(lambda obj: obj)
    reader.feed('{"items":[{"a":1},{"b":')
    with pytest.raises(ValueError, match=r"Expecting value|ended early"):
        reader.close()


async def test_a_failed_answer_of_the_watch_cache_pages_from_etcd_instead(
    api: FakeApi, kube: Kube
) -> None:
    """The first page's token stays good: etcd's pages go on from it."""

    def answer(seen: Seen) -> Reply:
        if seen.query.get("resourceVersion") == "0":
            return Reply(500, status(500, "InternalError", "etcdserver: request timed out"))
        return _paged_or_cached(seen)

    api.on("GET", "/api/v1/pods", answer)
    items, version = await kube.list_with_version(PODS, page=1, cached=True, trim=_drop_fields)
    assert (items, version) == ([{"name": n} for n in "abc"], "7")
    assert [s.query.get("continue") for s in api.seen] == [None, None, "c1", "c2"]


async def test_a_list_trims_its_items_as_it_decodes_them(api: FakeApi, kube: Kube) -> None:
    api.on("GET", "/api/v1/pods", _paged_or_cached)
    items, _ = await kube.list_with_version(PODS, page=1, cached=True, trim=_drop_fields)
    assert items == [{"name": n} for n in "abc"]


async def test_a_410_without_continue_is_the_callers(api: FakeApi, kube: Kube) -> None:
    api.on("GET", "/api/v1/pods", Reply(410, status(410, "Expired", "too old")))
    with pytest.raises(ApiError) as info:
        await kube.list(PODS)
    assert info.value.gone


async def test_a_server_gone_mid_answer_is_a_connection_error() -> None:
    """An API server that restarts drops the connection before it answers: callers see a
    ConnectionError (an OSError, like an unreachable server), not an aiohttp exception."""
    import asyncio

    from tests.unit.adapters.fake_api import kube_for

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = kube_for(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError, match="Server disconnected"):
            await client.get(PODS, "p", "ns")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
