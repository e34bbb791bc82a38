"""The validating admission webhook: an HTTPS server every operator replica runs.

The API server sends it an ``AdmissionReview`` for every CREATE and UPDATE of kubatch's kinds
(never of their status); the decisions are pure (``kubatch.api.admission``); this module does
the I/O around them:

- a new BatchJob's submitter must be allowed to create pods in its namespace: one
  ``SubjectAccessReview``, whose "yes" is remembered for ``access_cache_seconds`` per exact
  question (user, groups, uid, extra, namespace) — a bulk submission asks once, not once per
  job; a "no" is never remembered, so a new RoleBinding applies at once, and a revoked one
  within those seconds (the API server's own webhook authorizer keeps a "yes" for minutes);
- its queue and definition are looked up so that rules that need them (``shareIdentifier``,
  ``Ref::`` parameters, a size from somewhere) are checked too: from what the replica's
  watches last delivered (``known``), else read (GET) — one applied a moment ago is found;
- the certificate: either the operator's own — a CA and a serving certificate in one Secret
  of its namespace shared by all replicas (the replica that finds it missing creates it; a
  409 means another did, and that one is used), the CA put into the configuration's
  ``caBundle`` and checked again every minute — or files provided by cert-manager
  (``--webhook-cert-dir``), re-read when they change;
- ``--webhook-register`` (local use) writes the whole configuration, reached by URL.

Answering is never blocked by the operator's own work: nothing here touches the scheduling
state. An unexpected error is logged, counted (``kubatch_handler_errors_total{handler=
"webhook"}``) and answered as a denial that says so, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from kubatch.adapters.kube import (
    JOBDEFINITIONS,
    JOBQUEUES,
    SECRETS,
    SUBJECTACCESSREVIEWS,
    VALIDATINGWEBHOOKCONFIGURATIONS,
    ApiError,
    Resource,
)
from kubatch.adapters.protocol import KubeApi
from kubatch.api import admission
from kubatch.controller import certs
from kubatch.controller.settings import WebhookSettings
from kubatch.metrics import Metrics

log = logging.getLogger("kubatch.webhook")
JsonDict = dict[str, Any]
REFRESH = 60.0
"""Seconds between checks of the certificate (renewed? rotated by cert-manager?) and of the
configuration's caBundle."""
RETRY = 2.0
"""Seconds between attempts while the certificate cannot be had (RBAC being set up, …)."""
IO_ERRORS = (ApiError, OSError, TimeoutError)
ACCESS_CACHE_SIZE = 10_000
"""At most this many remembered "yes" answers (expired ones are dropped first)."""
Known = Callable[[Resource, str, str | None], JsonDict | None]
"""A look-up in what the watches delivered: (kind, name, namespace) -> the object or None."""


def hosts_of(cfg: WebhookSettings, namespace: str) -> list[str]:
    """The names the API server may use for the webhook: the Service's DNS names, the URL's
    host, else the loopback address."""
    out: list[str] = []
    if cfg.service:
        base = f"{cfg.service}.{namespace}"
        out += [cfg.service, base, f"{base}.svc", f"{base}.svc.cluster.local"]
    if cfg.url:
        host = urlparse(cfg.url).hostname
        if host:
            out.append(host)
    return out or ["127.0.0.1", "localhost"]


class Webhook:
    """The server, its certificate and the configuration's caBundle."""

    def __init__(
        self,
        kube: KubeApi,
        settings: WebhookSettings,
        *,
        namespace: str,
        metrics: Metrics | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        known: Known | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.known = known
        self.mono = mono
        self._allowed: dict[str, float] = {}
        """Remembered "yes" answers: the review's spec (JSON) -> until when (``mono``)."""
        self._asking: dict[str, asyncio.Future[JsonDict]] = {}
        """Reviews under way, by the same key: concurrent identical questions ask once."""
        self.cfg = settings
        self.namespace = settings.namespace or namespace
        self.hosts = hosts_of(settings, self.namespace)
        self.metrics = metrics
        self.now = now
        self.ready = asyncio.Event()
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self.bundle: certs.Bundle | None = None
        self._files: tuple[float, float] | None = None
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    # ------------------------------------------------------------------ serving

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_post(admission.PATH, self.handle)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def run(self) -> None:
        """Get the certificate (retrying until it can), serve, then make the API server call
        us (caBundle, or the whole configuration with ``register``); keep it all fresh."""
        await self._retry(self.certificate, "webhook certificate not available yet")
        await self.start()
        await self._retry(lambda: self.publish(first=True), "webhook configuration not set yet")
        try:
            while True:
                await asyncio.sleep(REFRESH)
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("webhook certificate check failed: %s", exc)
        finally:
            await self.stop()

    @staticmethod
    async def _retry(step: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            try:
                await step()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # RBAC not there yet, API server busy, bad files…
                log.warning("%s: %s", what, exc)
                await asyncio.sleep(RETRY)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.addr, self.cfg.port, ssl_context=self.ssl)
        await site.start()
        self.ready.set()
        log.info("admission webhook serving on https://%s:%d%s (certificate for %s)",
                 self.cfg.addr, self.cfg.port, admission.PATH, ", ".join(self.hosts))  # fmt: skip

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            req = admission.parse_review(body)
        except (ValueError, admission.MalformedReview) as exc:
            return web.Response(status=400, text=f"not an admission.k8s.io/v1 review: {exc}\n")
        try:
            verdict = await self.judge(req)
        except Exception as exc:  # a bug: say so, count it, deny (failurePolicy Fail would)
            log.exception("admission review of %s %s failed", req.kind, req.name)
            if self.metrics is not None:
                self.metrics.count_handler_error("webhook")
            verdict = admission.Verdict(
                False, 500, "InternalError", f"kubatch's webhook failed: {exc}"
            )
        if self.metrics is not None:
            self.metrics.observe_admission_review(req.kind, req.operation, verdict.allowed)
        return web.json_response(admission.review_response(req.uid, verdict))

    async def judge(self, req: admission.Request) -> admission.Verdict:
        """Self-contained rules first (no I/O), then who submits, then what the job names."""
        verdict = admission.admit(req)
        if not verdict.allowed:
            return verdict
        review = admission.access_review(req)
        if review is not None:
            denial = await self._access(req, review)
            if denial is not None:
                return denial
        wanted = admission.lookups(req)
        if wanted.queue is None and wanted.definition is None:
            return verdict
        missing: list[str] = []
        queue = definition = None
        if wanted.queue is not None:
            queue = await self._read(JOBQUEUES, wanted.queue, None, "queue", missing)
        if wanted.definition is not None:
            ns, name = wanted.definition
            definition = await self._read(JOBDEFINITIONS, name, ns, "definition", missing)
        return admission.admit(req, queue=queue, definition=definition, missing=missing)

    async def _access(self, req: admission.Request, review: JsonDict) -> admission.Verdict | None:
        """The SubjectAccessReview's verdict (None: allowed), a remembered "yes" first."""
        key = json.dumps(review["spec"], sort_keys=True, separators=(",", ":"))
        now = self.mono()
        if self._allowed.get(key, -1.0) > now:
            return None
        asking = self._asking.get(key)
        if asking is None:  # the same question already on its way (a burst): share its answer
            asking = asyncio.ensure_future(self.kube.create(SUBJECTACCESSREVIEWS, review))
            self._asking[key] = asking

            def done(task: asyncio.Future[JsonDict], key: str = key) -> None:
                if self._asking.get(key) is task:
                    del self._asking[key]

            asking.add_done_callback(done)
        try:
            answer = await asyncio.shield(asking)
        except IO_ERRORS as exc:
            return admission.Verdict(
                False, 503, "ServiceUnavailable",
                f"could not check that {req.user.username!r} may create pods: {exc}",
            )  # fmt: skip
        denial = admission.access_verdict(req, answer.get("status") or {})
        ttl = self.cfg.access_cache_seconds
        if denial is None and ttl > 0:
            if len(self._allowed) >= ACCESS_CACHE_SIZE:
                self._allowed = {k: t for k, t in self._allowed.items() if t > now}
                if len(self._allowed) >= ACCESS_CACHE_SIZE:
                    self._allowed.clear()
            self._allowed[key] = now + ttl
        return denial

    async def _read(
        self, res: Resource, name: str, ns: str | None, what: str, missing: list[str]
    ) -> JsonDict | None:
        if self.known is not None:
            seen = self.known(res, name, ns)
            if seen is not None:
                return seen
        try:
            return await self.kube.get(res, name, namespace=ns)
        except ApiError as exc:
            if exc.not_found:
                missing.append(what)
            else:  # the operator checks it when the job arrives
                log.warning("webhook: could not read %s %s: %s", res.plural, name, exc)
        except (OSError, TimeoutError) as exc:
            log.warning("webhook: could not read %s %s: %s", res.plural, name, exc)
        return None

    # ------------------------------------------------------------------ the certificate

    async def refresh(self) -> None:
        """Load (and if needed make or renew) the certificate; keep the caBundle right."""
        await self.certificate()
        await self.publish()

    async def certificate(self) -> None:
        """The serving certificate: cert-manager's files, or the shared Secret's."""
        if self.cfg.cert_dir is not None:
            self._load_files(self.cfg.cert_dir)
            return
        bundle = await self._own_bundle()
        if bundle != self.bundle:
            self._use(bundle.tls_crt, bundle.tls_key)
            self.bundle = bundle

    async def publish(self, *, first: bool = False) -> None:
        """Make the API server trust (and with ``register``, call) this webhook. Registration
        happens once, at start: a configuration removed later stays removed."""
        if self.bundle is None:  # cert-manager's CA injector keeps the caBundle
            return
        if first and self.cfg.register:
            await self._register(self.bundle)
        else:
            await self._ca_bundle(self.bundle)

    def _use(self, cert: bytes, key: bytes) -> None:
        """Load a PEM pair into the server's TLS context (new connections use it)."""
        fd, path = tempfile.mkstemp(prefix="kubatch-webhook-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(cert + b"\n" + key)
            self.ssl.load_cert_chain(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _load_files(self, where: Path) -> None:
        crt, key = where / "tls.crt", where / "tls.key"
        stamp = (crt.stat().st_mtime, key.stat().st_mtime)
        if stamp == self._files:
            return
        self.ssl.load_cert_chain(str(crt), str(key))
        self._files = stamp
        log.info("webhook certificate loaded from %s", where)

    async def _own_bundle(self) -> certs.Bundle:
        name, ns = self.cfg.secret, self.namespace
        try:
            secret: JsonDict | None = await self.kube.get(SECRETS, name, namespace=ns)
        except ApiError as exc:
            if not exc.not_found:
                raise
            secret = None
        now = self.now()
        if secret is None:
            bundle = certs.new_bundle(self.hosts, now)
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns,
                             "labels": {"app.kubernetes.io/part-of": "kubatch"}},
                "type": "kubernetes.io/tls",
                "data": bundle.secret_data(),
            }  # fmt: skip
            try:
                await self.kube.create(SECRETS, body, namespace=ns)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                log.info("webhook Secret %s/%s made by another replica: using it", ns, name)
                return await self._own_bundle()
            log.info("webhook certificate made and stored in Secret %s/%s", ns, name)
            return bundle
        try:
            bundle = certs.from_secret_data(secret.get("data"))
            why = certs.renewal_reason(bundle, self.hosts, now)
            renewed = certs.new_bundle(self.hosts, now, ca=bundle) if why else None
        except certs.CertificateError as exc:
            why, renewed = f"unusable ({exc})", certs.new_bundle(self.hosts, now)
        if renewed is None:
            return bundle
        version = (secret.get("metadata") or {}).get("resourceVersion")
        patch = {"metadata": {"resourceVersion": version}, "data": renewed.secret_data()}
        try:
            await self.kube.patch(SECRETS, name, patch, namespace=ns)
        except ApiError as exc:
            if not exc.conflict:
                raise
            return await self._own_bundle()  # another replica renewed it first
        log.info("webhook certificate renewed: %s", why)
        return renewed

    async def _ca_bundle(self, bundle: certs.Bundle) -> None:
        """Make the configuration trust our CA."""
        name = self.cfg.configuration
        try:
            current = await self.kube.get(VALIDATINGWEBHOOKCONFIGURATIONS, name)
        except ApiError as exc:
            if not exc.not_found:
                raise
            log.warning("ValidatingWebhookConfiguration %s does not exist: nothing calls the "
                        "webhook until it does", name)  # fmt: skip
            return
        patch = with_ca_bundle(current, bundle.ca_bundle)
        if patch is not None:
            await self.kube.patch(VALIDATINGWEBHOOKCONFIGURATIONS, name, patch)
            log.info("caBundle of ValidatingWebhookConfiguration %s set", name)

    async def _register(self, bundle: certs.Bundle) -> None:
        url = self.cfg.url or f"https://127.0.0.1:{self.cfg.port}"
        wanted = admission.webhook_configuration(
            self.cfg.configuration, ca_bundle=bundle.ca_bundle, url=url,
            labels={"app.kubernetes.io/part-of": "kubatch"},
        )  # fmt: skip
        try:
            await self.kube.create(VALIDATINGWEBHOOKCONFIGURATIONS, wanted)
        except ApiError as exc:
            if not exc.conflict:
                raise
            await self.kube.patch(
                VALIDATINGWEBHOOKCONFIGURATIONS, self.cfg.configuration,
                {"webhooks": wanted["webhooks"]},
            )  # fmt: skip
        log.info("ValidatingWebhookConfiguration %s registered for %s", self.cfg.configuration, url)


def with_ca_bundle(current: Mapping[str, Any], ca_bundle: str) -> JsonDict | None:
    """The merge patch that puts ``ca_bundle`` into every webhook of a configuration (None when
    each already has it). The whole list is sent (a merge patch replaces lists), guarded by
    the resourceVersion it was read at (409 if someone changed it meanwhile)."""
    hooks = [dict(h) for h in current.get("webhooks") or []]
    if all((h.get("clientConfig") or {}).get("caBundle") == ca_bundle for h in hooks):
        return None
    for h in hooks:
        h["clientConfig"] = {**(h.get("clientConfig") or {}), "caBundle": ca_bundle}
    version = (current.get("metadata") or {}).get("resourceVersion")
    return {"metadata": {"resourceVersion": version}, "webhooks": hooks}
