"""The admission webhook in-process on a FakeKube: its certificate shared by replicas through one
Secret, the caBundle it keeps, renewal, cert-manager's files, and reviews over real TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubatch.adapters import calls
from kubatch.adapters.fake import FakeKube
from kubatch.adapters.kube import (
    JOBDEFINITIONS,
    JOBQUEUES,
    SECRETS,
    SUBJECTACCESSREVIEWS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    Resource,
)
from kubatch.api import admission
from kubatch.controller import certs
from kubatch.controller.settings import WebhookSettings
from kubatch.controller.webhook import Webhook, hosts_of, with_ca_bundle
from kubatch.devkit.process import free_port
from kubatch.metrics import Metrics

JsonDict = dict[str, Any]
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
API = "kubatch.io/v1alpha1"


class Cluster(FakeKube):
    """A FakeKube that answers SubjectAccessReviews: ``may_create_pods`` users may."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.may_create_pods: set[str] = {"admin"}
        self.reviews: list[JsonDict] = []

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        if res is not SUBJECTACCESSREVIEWS:
            return await super().create(res, body, namespace)
        self._call("create", res)
        await asyncio.sleep(0)  # a real review is a round trip: others run meanwhile
        self.reviews.append(body)
        allowed = body["spec"]["user"] in self.may_create_pods
        return {**body, "status": {"allowed": allowed}}


def settings(**kw: Any) -> WebhookSettings:
    base: dict[str, Any] = {"port": free_port(), "addr": "127.0.0.1", "configuration": "kubatch",
                            "secret": "hook-tls", "namespace": "sys"}  # fmt: skip
    base.update(kw)
    return WebhookSettings(**base)


def configuration(ca: str = "") -> JsonDict:
    return admission.webhook_configuration("kubatch", ca_bundle=ca, url="https://127.0.0.1:1")


def strict(**needs: bool) -> Cluster:
    return Cluster(allowed=calls.allowed(calls.needs(webhook=True, **needs)))


async def test_replicas_share_one_secret_and_set_the_ca_bundle_once() -> None:
    kube = strict()
    kube.put(VALIDATINGWEBHOOKCONFIGURATIONS, configuration())
    cfg = settings(service="kubatch-webhook")
    a = Webhook(kube, cfg, namespace="ignored", now=lambda: NOW)
    b = Webhook(kube, cfg, namespace="ignored", now=lambda: NOW)
    await asyncio.gather(a.refresh(), b.refresh())  # both find it missing; one create wins
    creates = [w for w in kube.writes if w.resource == "secrets" and w.verb == "create"]
    assert len(creates) == 2, "both tried"
    stored = kube.get_object(SECRETS, "hook-tls", "sys")
    assert stored is not None
    assert stored["type"] == "kubernetes.io/tls"
    shared = certs.from_secret_data(stored["data"])
    assert a.bundle == b.bundle == shared
    vwc = kube.get_object(VALIDATINGWEBHOOKCONFIGURATIONS, "kubatch")
    assert vwc is not None
    assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == shared.ca_bundle
    assert vwc["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:1/validate"
    assert set(hosts_of(cfg, "sys")) <= {
        "kubatch-webhook",
        "kubatch-webhook.sys",
        "kubatch-webhook.sys.svc",
        "kubatch-webhook.sys.svc.cluster.local",
    }
    n = len(kube.writes)
    await a.refresh()
    await b.refresh()
    assert len(kube.writes) == n, "nothing to write when all is in place"


async def test_renewal_keeps_the_ca_so_the_ca_bundle_never_changes() -> None:
    kube = strict()
    kube.put(VALIDATINGWEBHOOKCONFIGURATIONS, configuration())
    clock = [NOW]
    hook = Webhook(kube, settings(), namespace="sys", now=lambda: clock[0])
    await hook.refresh()
    first = hook.bundle
    assert first is not None
    clock[0] = NOW + certs.SERVING_LIFETIME - dt.timedelta(days=10)
    await hook.refresh()
    renewed = hook.bundle
    assert renewed is not None
    assert renewed.tls_crt != first.tls_crt
    assert renewed.ca_crt == first.ca_crt
    patches = [w for w in kube.writes if w.verb == "patch"]
    assert [w.resource for w in patches] == ["validatingwebhookconfigurations", "secrets"]
    other = Webhook(kube, settings(), namespace="sys", now=lambda: clock[0])
    await other.refresh()
    assert other.bundle == renewed, "another replica picks the renewed certificate up"


async def test_an_unusable_secret_is_replaced() -> None:
    kube = strict()
    kube.put(SECRETS, {"metadata": {"name": "hook-tls", "namespace": "sys"}, "data": {"x": "eA=="}})
    hook = Webhook(kube, settings(), namespace="sys", now=lambda: NOW)
    await hook.refresh()
    stored = kube.get_object(SECRETS, "hook-tls", "sys")
    assert stored is not None
    assert certs.from_secret_data(stored["data"]) == hook.bundle


async def test_register_writes_the_whole_configuration() -> None:
    kube = strict(register=True)
    cfg = settings(register=True, url="https://127.0.0.1:9443")
    hook = Webhook(kube, cfg, namespace="sys", now=lambda: NOW)
    await hook.certificate()
    await hook.publish(first=True)
    vwc = kube.get_object(VALIDATINGWEBHOOKCONFIGURATIONS, "kubatch")
    assert vwc is not None
    assert hook.bundle is not None
    want = admission.webhook_configuration("kubatch", ca_bundle=hook.bundle.ca_bundle,
                                           url="https://127.0.0.1:9443")  # fmt: skip
    assert vwc["webhooks"] == want["webhooks"]
    hook2 = Webhook(kube, cfg, namespace="sys", now=lambda: NOW)
    await hook2.refresh()  # already there: patched, not an error
    assert (
        kube.get_object(VALIDATINGWEBHOOKCONFIGURATIONS, "kubatch")["webhooks"] == vwc["webhooks"]
    )  # type: ignore[index]


async def test_cert_manager_files_need_no_api_call(tmp_path: Path) -> None:
    bundle = certs.new_bundle(["127.0.0.1"], NOW)
    (tmp_path / "tls.crt").write_bytes(bundle.tls_crt)
    (tmp_path / "tls.key").write_bytes(bundle.tls_key)
    kube = strict(own_certs=False)
    hook = Webhook(kube, settings(cert_dir=tmp_path), namespace="sys", now=lambda: NOW)
    await hook.refresh()
    assert kube.calls == [], "cert-manager's certificate: no Secret, no caBundle"
    assert hook.bundle is None
    assert kube.allowed is not None
    assert ("create", "secrets") not in kube.allowed


def test_with_ca_bundle_patches_every_webhook_guarded_by_its_version() -> None:
    vwc = configuration("old")
    vwc["metadata"]["resourceVersion"] = "42"
    vwc["webhooks"].append({**vwc["webhooks"][0], "name": "second.kubatch.io"})
    patch = with_ca_bundle(vwc, "new")
    assert patch is not None
    assert patch["metadata"] == {"resourceVersion": "42"}
    assert [h["clientConfig"]["caBundle"] for h in patch["webhooks"]] == ["new", "new"]
    assert patch["webhooks"][0]["rules"] == vwc["webhooks"][0]["rules"]
    assert with_ca_bundle({**vwc, "webhooks": patch["webhooks"]}, "new") is None


# --------------------------------------------------------------------------- reviews over TLS


def cluster_with_q_and_d() -> Cluster:
    kube = strict()
    order = [{"order": 1, "computeEnvironment": "ce"}]
    kube.put(JOBQUEUES, {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": "q"},
                         "spec": {"computeEnvironmentOrder": order}})  # fmt: skip
    container = {"name": "main", "image": "busybox", "command": ["Ref::x"],
                 "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}  # fmt: skip
    template = {"spec": {"containers": [container]}}
    kube.put(JOBDEFINITIONS, {"apiVersion": API, "kind": "JobDefinition",
                              "metadata": {"name": "d", "namespace": "ns"},
                              "spec": {"template": template}})  # fmt: skip
    return kube


@pytest.fixture
async def served() -> AsyncIterator[tuple[Webhook, Cluster, aiohttp.ClientSession, str]]:
    kube = cluster_with_q_and_d()
    kube.put(VALIDATINGWEBHOOKCONFIGURATIONS, configuration())
    metrics = Metrics()
    hook = Webhook(kube, settings(), namespace="sys", metrics=metrics, now=lambda: NOW)
    task = asyncio.create_task(hook.run())
    await asyncio.wait_for(hook.ready.wait(), 10)
    assert hook.bundle is not None
    ctx = ssl.create_default_context(cadata=hook.bundle.ca_crt.decode())
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
    try:
        yield hook, kube, session, f"https://127.0.0.1:{hook.cfg.port}{admission.PATH}"
    finally:
        await session.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def review(obj: JsonDict, user: str = "admin", operation: str = "CREATE") -> JsonDict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "r-1",
            "kind": {"group": "kubatch.io", "version": "v1alpha1", "kind": obj["kind"]},
            "operation": operation,
            "namespace": "ns",
            "name": obj["metadata"]["name"],
            "object": obj,
            "userInfo": {"username": user, "groups": []},
        },
    }


def bj(name: str, **spec: Any) -> JsonDict:
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **spec}}  # fmt: skip


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=json.dumps(body)) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_reviews_over_tls(
    served: tuple[Webhook, Cluster, aiohttp.ClientSession, str],
) -> None:
    hook, kube, session, url = served
    code, answer = await post(session, url, review(bj("ok", parameters={"x": "1"})))
    assert code == 200
    assert answer["response"] == {"uid": "r-1", "allowed": True}
    assert kube.reviews[-1]["spec"]["resourceAttributes"]["resource"] == "pods"
    # Ref:: to a parameter nobody defines: the definition was read to find out.
    _, answer = await post(session, url, review(bj("noparam")))
    assert answer["response"]["allowed"] is False
    assert "spec.parameters.x" in answer["response"]["status"]["message"]
    # Whoever may not create pods may not submit a BatchJob.
    _, answer = await post(
        session, url, review(bj("mallory-job", parameters={"x": "1"}), "mallory")
    )
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 403
    assert (
        'user "mallory" may not create pods in namespace "ns"'
        in answer["response"]["status"]["message"]
    )
    # A job naming what does not exist yet is allowed with warnings (GitOps order).
    _, answer = await post(
        session, url, review(bj("early", jobQueue="later", jobDefinition="later"))
    )
    assert answer["response"]["allowed"] is True
    assert len(answer["response"]["warnings"]) == 2
    # A glob in the middle is denied before anything is read or asked.
    asked = len(kube.reviews)
    glob = {"evaluateOnExit": [{"onReason": "a*b", "action": "Exit"}]}
    _, answer = await post(session, url, review(bj("glob", retryStrategy=glob)))
    assert answer["response"]["allowed"] is False
    assert len(kube.reviews) == asked
    code, text = await post(session, url, {"kind": "Pod"})
    assert code == 400
    assert "not an admission.k8s.io/v1 review" in text
    text = hook.metrics.exposition().decode() if hook.metrics else ""
    assert (
        'kubatch_admission_reviews_total{allowed="false",kind="BatchJob",operation="CREATE"} 3.0'
        in text
    )


async def test_an_unexpected_error_is_a_counted_denial_never_a_crash(
    served: tuple[Webhook, Cluster, aiohttp.ClientSession, str],
) -> None:
    hook, kube, session, url = served
    original = kube.get

    async def broken(res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        if res is JOBQUEUES:
            raise RuntimeError("boom")
        return await original(res, name, namespace)

    kube.get = broken  # type: ignore[method-assign]
    _, answer = await post(session, url, review(bj("x", parameters={"x": "1"})))
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 500
    assert "kubatch's webhook failed: boom" in answer["response"]["status"]["message"]
    assert hook.metrics is not None
    assert (
        'kubatch_handler_errors_total{handler="webhook"} 1.0' in hook.metrics.exposition().decode()
    )
    kube.get = original  # type: ignore[method-assign]
    _, answer = await post(session, url, review(bj("y", parameters={"x": "1"})))
    assert answer["response"]["allowed"] is True, "the server still answers"


# --------------------------------------------------------------------------- fewer API calls


async def test_a_yes_is_remembered_for_a_while_a_no_never() -> None:
    kube = cluster_with_q_and_d()
    mono = [100.0]
    hook = Webhook(kube, settings(access_cache_seconds=30), namespace="sys",
                   mono=lambda: mono[0])  # fmt: skip

    async def allowed(name: str, user: str = "admin") -> bool:
        body = review(bj(name, parameters={"x": "1"}), user)
        return (await hook.judge(admission.parse_review(body))).allowed

    assert all([await allowed(f"bulk-{i}") for i in range(20)])
    assert len(kube.reviews) == 1, "a bulk submission asks once"
    assert not await allowed("m1", "mallory")
    assert not await allowed("m2", "mallory")
    assert len(kube.reviews) == 3, "a 'no' is asked again every time"
    kube.may_create_pods.add("mallory")  # a RoleBinding applied: effective at once
    assert await allowed("m3", "mallory")
    assert len(kube.reviews) == 4
    kube.may_create_pods.discard("mallory")  # revoked: effective once the 'yes' expires
    assert await allowed("m4", "mallory")
    mono[0] += 31
    assert not await allowed("m5", "mallory")
    assert await allowed("after", "admin")
    assert len(kube.reviews) == 6
    asked = [r["spec"]["user"] for r in kube.reviews]
    assert asked == ["admin", "mallory", "mallory", "mallory", "mallory", "admin"]

    burst = Webhook(kube, settings(access_cache_seconds=30), namespace="sys")
    bodies = [review(bj(f"b{i}", parameters={"x": "1"}), "bob") for i in range(10)]
    kube.may_create_pods.add("bob")
    verdicts = await asyncio.gather(*(burst.judge(admission.parse_review(b)) for b in bodies))
    assert all(v.allowed for v in verdicts)
    assert [r["spec"]["user"] for r in kube.reviews[6:]] == ["bob"], "a burst asks once"
    assert burst._asking == {}, "nothing left under way"
    del kube.reviews[6:]

    never = Webhook(kube, settings(access_cache_seconds=0), namespace="sys")
    for i in range(3):
        body = review(bj(f"n{i}", parameters={"x": "1"}))
        assert (await never.judge(admission.parse_review(body))).allowed
    assert len(kube.reviews) == 9, "0 s: asked for every BatchJob"


async def test_queue_and_definition_come_from_the_watches_else_from_the_api() -> None:
    kube = cluster_with_q_and_d()
    seen: dict[tuple[str, str, str | None], JsonDict] = {}

    def known(res: Resource, name: str, ns: str | None) -> JsonDict | None:
        return seen.get((res.plural, name, ns))

    hook = Webhook(kube, settings(), namespace="sys", known=known)

    async def judge(obj: JsonDict) -> admission.Verdict:
        return await hook.judge(admission.parse_review(review(obj)))

    def reads() -> list[str]:
        return [plural for verb, plural in kube.calls if verb == "get"]

    # Not delivered by a watch yet (applied a moment ago): read from the API server.
    assert not (await judge(bj("a"))).allowed, "Ref::x without a parameter: the API's d"
    assert reads() == ["jobqueues", "jobdefinitions"]
    # Delivered: no read; the watch's copy is what is judged (here: it defines x).
    q = kube.get_object(JOBQUEUES, "q")
    d = kube.get_object(JOBDEFINITIONS, "d", "ns")
    assert q is not None
    assert d is not None
    seen[("jobqueues", "q", None)] = q
    seen[("jobdefinitions", "d", "ns")] = {**d, "spec": {**d["spec"], "parameters": {"x": "1"}}}
    n = len(kube.calls)
    verdict = await judge(bj("b"))
    assert verdict.allowed, verdict
    assert len(reads()) == 2
    assert all(v != "get" for v, _ in kube.calls[n:])
    # Neither seen nor in the API: allowed with the warnings (GitOps: it may come later).
    verdict = await judge(bj("c", jobQueue="later", jobDefinition="later"))
    assert verdict.allowed
    assert reads()[-2:] == ["jobqueues", "jobdefinitions"]
