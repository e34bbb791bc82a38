"""kubatch's one Kubernetes client on the real control plane: acting as another identity
(impersonation, a caller's bearer token) under real RBAC, and the list-then-watch answering a
resourceVersion the server no longer has (410 Gone) with a relist."""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from tests.conftest import Kubectl, PlaneHandle

from kubatch.adapters.kube import (
    CONFIGMAPS,
    CRDS,
    ROLEBINDINGS,
    ROLES,
    ApiError,
    Kube,
    Resource,
)
from kubatch.adapters.watch import WatchStats, list_then_watch
from kubatch.devkit.polling import eventually_async

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def kube(local_plane: PlaneHandle) -> AsyncIterator[Kube]:
    client = await Kube.from_environment(local_plane.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


async def grant_read_configmaps(kube: Kube, ns: str, subject: dict[str, str]) -> None:
    """A Role that may read ConfigMaps in ``ns``, bound to ``subject`` (server-side apply)."""
    rbac = {"apiVersion": "rbac.authorization.k8s.io/v1"}
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
    await kube.apply(
        ROLES, {**rbac, "kind": "Role", "metadata": {"name": "read-cm"}, "rules": [rule]}, ns
    )
    binding = f"read-cm-{subject['kind'].lower()}-{subject['name'].replace(':', '-')}"
    await kube.apply(
        ROLEBINDINGS,
        {
            **rbac,
            "kind": "RoleBinding",
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **subject}],
        },
        ns,
    )


async def forbidden(client: Kube, ns: str) -> ApiError | None:
    """The 403 of listing ConfigMaps in ``ns`` as ``client`` (None when allowed)."""
    try:
        await client.list(CONFIGMAPS, namespace=ns)
    except ApiError as exc:
        if not exc.forbidden:
            raise
        return exc
    return None


async def test_impersonated_users_and_groups_get_exactly_their_rbac(
    kube: Kube, namespace: str
) -> None:
    ns = namespace
    await kube.create(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"k": "v"}}, ns)
    alice, bob = kube.impersonating("alice"), kube.impersonating("bob")
    carol = kube.impersonating("carol", groups=["kubatch-readers"])
    carol_alone = kube.impersonating("carol")

    denied = await forbidden(alice, ns)
    assert denied is not None
    assert 'User "alice" cannot list resource "configmaps"' in denied.message
    assert await forbidden(carol, ns) is not None

    await grant_read_configmaps(kube, ns, {"kind": "User", "name": "alice"})
    await grant_read_configmaps(kube, ns, {"kind": "Group", "name": "kubatch-readers"})

    async def allowed(client: Kube) -> bool:
        return await forbidden(client, ns) is None

    await eventually_async(lambda: allowed(alice), what="alice's RoleBinding", timeout=30)
    items = await alice.list(CONFIGMAPS, namespace=ns)
    assert [i["metadata"]["name"] for i in items] == ["c"]
    await eventually_async(lambda: allowed(carol), what="the group's RoleBinding", timeout=30)
    assert await forbidden(bob, ns) is not None  # no binding: still denied
    assert await forbidden(carol_alone, ns) is not None  # the group made the difference
    assert kube.counters.reads >= 6  # one pool, one login, every identity counted


async def test_a_callers_bearer_token_is_that_caller(kube: Kube, namespace: str) -> None:
    """A ServiceAccount's token (the 1.20 token controller writes it into a Secret) used with
    ``with_bearer_token``: the server sees the ServiceAccount, not the operator's login."""
    ns = namespace
    sa = Resource("", "v1", "serviceaccounts")
    secrets = Resource("", "v1", "secrets")
    await kube.create(sa, {"metadata": {"name": "caller"}}, ns)

    async def token() -> str:
        obj = await kube.get(sa, "caller", ns)
        names = [s["name"] for s in obj.get("secrets") or [] if "token" in s["name"]]
        if not names:
            return ""
        data = ((await kube.get(secrets, names[0], ns)).get("data") or {}).get("token")
        return base64.b64decode(data).decode() if data else ""

    caller = kube.with_bearer_token(await eventually_async(token, what="the SA token"))
    denied = await forbidden(caller, ns)
    assert denied is not None
    assert f"system:serviceaccount:{ns}:caller" in denied.message
    await grant_read_configmaps(
        kube, ns, {"kind": "User", "name": f"system:serviceaccount:{ns}:caller"}
    )

    async def allowed() -> bool:
        return await forbidden(caller, ns) is None

    await eventually_async(allowed, what="the SA's RoleBinding", timeout=30)
    assert await forbidden(kube.impersonating("someone-else"), ns) is not None


def test_the_plugin_acts_as_the_user_given_with_as(
    local_plane: PlaneHandle, namespace: str, kubectl: Kubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubatch.devkit.stack import install_crds
    from kubatch.plugin import main

    install_crds(local_plane.kubeconfig)
    base = ["--kubeconfig", str(local_plane.kubeconfig), "-n", namespace]
    assert main([*base, "ls"], out=io.StringIO()) == 0
    assert main([*base, "--as", "mallory", "ls"], out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "403" in err
    assert 'User "mallory" cannot list resource "batchjobs"' in err
    assert main([*base, "--as-group", "x", "ls"], out=io.StringIO()) == 1
    assert "--as-group needs --as" in capsys.readouterr().err


async def fresh_crd(kube: Kube) -> Resource:
    """A CRD of its own: its watch cache starts now, after every version the test noted."""
    group = f"w{uuid.uuid4().hex[:8]}.watch.kubatch.io"
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"things.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    await kube.apply(CRDS, body, field_manager="kubatch-test")

    async def established() -> bool:
        conds = ((await kube.get(CRDS, body["metadata"]["name"])).get("status") or {}).get(
            "conditions"
        ) or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    await eventually_async(established, what="the CRD", timeout=60, every=0.2)
    return Resource(group, "v1", "things")


async def test_a_too_old_resource_version_costs_a_410_and_a_relist(
    kube: Kube, namespace: str
) -> None:
    ns = namespace
    # A version from before the kind existed: the server cannot replay from there.
    marker = await kube.create(CONFIGMAPS, {"metadata": {"name": "marker"}}, ns)
    old_version = marker["metadata"]["resourceVersion"]
    things = await fresh_crd(kube)
    thing = {"apiVersion": things.api_version, "kind": "Thing"}

    async def create(name: str) -> None:
        async def ok() -> bool:
            try:
                await kube.create(things, {**thing, "metadata": {"name": name}}, ns)
            except ApiError as exc:
                if exc.status not in (404, 503):  # the new kind is still being served up
                    raise
                return False
            return True

        await eventually_async(ok, what=f"thing {name} created", timeout=30, every=0.2)

    await create("a")
    synced: list[list[str]] = []
    events: list[tuple[str, str]] = []
    stats = WatchStats()
    task = asyncio.create_task(
        list_then_watch(
            kube,
            things,
            lambda kind, obj: events.append((kind, obj["metadata"]["name"])),
            namespace=ns,
            resource_version=old_version,
            stats=stats,
            on_sync=lambda items: synced.append([i["metadata"]["name"] for i in items]),
        )
    )
    try:

        async def relisted() -> bool:
            return bool(synced)

        await eventually_async(relisted, what="the relist after 410", timeout=30, every=0.1)
        await create("b")  # and the watch goes on from the relist's version

        async def seen_b() -> bool:
            return ("ADDED", "b") in events

        await eventually_async(seen_b, what="the event of thing b", timeout=30, every=0.1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stats.expired == 1, stats
    assert stats.lists == 1, stats  # resumed from a given version: this list is the relist
    assert synced[0] == ["a"]
    assert events == [("ADDED", "b")]
    assert int(stats.resource_version) > int(old_version)
