"""The Kubernetes API behind one small async client: raw JSON over one aiohttp connection pool.

Every part of kubatch that talks to a cluster uses :class:`Kube`: the operator, the simulator,
the demo, the kubectl plugin and the benchmarks. It logs in once, the way kubectl does
(:meth:`Kube.from_environment`: in-cluster service account, else the kubeconfig — static
tokens, client certificates, exec plugins, auth providers — through
``kubernetes_asyncio.config``), logs in again when the server answers 401 (exec-plugin
tokens expire), and can act as another identity on the same pool (:meth:`Kube.impersonating`,
:meth:`Kube.with_bearer_token`). List-then-watch lives in :mod:`kubatch.adapters.watch`.

Why not the generated client models: the operator moves thousands of small objects per
second and keeps only what it needs of them; parsing every response into generated model
classes costs CPU and memory for nothing. See docs/decisions/0003-kubernetes-client.md.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import copy
import gc
import json
import logging
import os
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from multidict import CIMultiDict

log = logging.getLogger("kubatch.kube")
JsonDict = dict[str, Any]

LARGE_ANSWER = 256 * 1024
"""Bytes from which an answer is decoded with the cyclic garbage collector paused."""
CACHED_LIST_MAX = 250_000
"""A list asked for ``cached`` is served whole from the API server's watch cache up to this
many objects (one answer: the 1.20 watch cache does not page; it is read as it arrives, item
by item, see :class:`ListReader`), and paged from etcd above."""
STREAM_CHUNK = 1 << 20
"""Bytes read at a time from a list answer that is decoded as it arrives."""


@contextlib.contextmanager
def gc_paused() -> Any:
    """Pause the cyclic garbage collector while a burst of long-lived objects is made (a large
    answer decoded, thousands of records rebuilt): every object made survives, so each
    collection the burst would trigger only walks the growing heap again — decoding 10,000
    BatchJobs took 2.5 times as long with it running. Reference counting still frees."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decode(raw: bytes, trim: Callable[[JsonDict], JsonDict] | None = None) -> Any:
    """A JSON answer (a large one with the collector paused: :func:`gc_paused`). ``trim``: a
    list's items are trimmed one by one as they are decoded (:func:`decode_list`)."""
    if trim is not None:
        with gc_paused() if len(raw) >= LARGE_ANSWER else contextlib.nullcontext():
            return decode_list(raw, trim)
    if len(raw) < LARGE_ANSWER:
        return json.loads(raw)
    with gc_paused():
        return json.loads(raw)


_SPACE = re.compile(r"[ \t\n\r]*")
SHARED_STRING = 64
"""Strings up to this long that a list's items repeat are kept once (:class:`ListReader`)."""


def decode_list(raw: bytes, trim: Callable[[JsonDict], JsonDict]) -> JsonDict:
    """Pure: a List answer whose ``items`` are decoded and trimmed one at a time
    (:class:`ListReader`). Any other JSON is decoded whole (its items trimmed after)."""
    text = raw.decode()
    reader = ListReader(trim)
    try:
        reader.feed(text)
        return reader.close()
    except ValueError:
        doc = json.loads(text)
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            doc["items"] = [trim(x) for x in doc["items"]]
        return doc  # type: ignore[no-any-return]


class ListReader:
    """Pure: a List answer read as its text arrives — ``{"key": value, ..., "items":
    [object, ...], ...}`` in any key order — its ``items`` decoded and trimmed one at a time,
    so that only what ``trim`` keeps is ever held: decoded whole, the 10,000 BatchJobs of one
    watch cache answer were ≈ 90 MB of small objects at once, and the heap that grew stayed
    with the process. Equal keys and equal short strings of all items are one object each
    (``json.loads`` shares keys within one call only, and every item is a call of its own
    here: 100,000 BatchJobs held ≈ 330 MB more without it). :meth:`feed` text (any cut);
    :meth:`close` gives the document. ValueError where the text is not such a list."""

    __slots__ = ("_at", "_buf", "_decoder", "_items", "_key", "_step", "doc", "trim")

    def __init__(self, trim: Callable[[JsonDict], JsonDict]) -> None:
        self.trim = trim
        self.doc: JsonDict = {}
        shared: dict[str, str] = {}

        def pairs(items: list[tuple[str, Any]], one: Any = shared.setdefault) -> JsonDict:
            return {
                one(k, k): (one(v, v) if v.__class__ is str and len(v) <= SHARED_STRING else v)
                for k, v in items
            }

        self._decoder = json.JSONDecoder(object_pairs_hook=pairs)
        self._items: list[JsonDict] = []
        self._buf = ""
        self._at = 0
        self._step = "open"
        self._key = ""

    def feed(self, text: str) -> None:
        self._buf = self._buf[self._at :] + text
        self._at = 0
        self._run(final=False)

    def close(self) -> JsonDict:
        self._run(final=True)
        if self._step != "done":
            raise ValueError("the answer ended early")
        return self.doc

    def _value(self, i: int, final: bool) -> tuple[Any, int] | None:
        """The JSON value at ``i``; None when it may go on in text still to come."""
        s = self._buf
        try:
            value, end = self._decoder.raw_decode(s, i)
        except json.JSONDecodeError:
            if final:
                raise
            return None
        if end >= len(s) and not final:
            return None  # a number or a literal may go on
        return value, end

    def _run(self, final: bool) -> None:
        s = self._buf
        while True:
            m = _SPACE.match(s, self._at)
            i = m.end() if m else self._at
            self._at = i
            if i >= len(s):
                return
            c, step = s[i], self._step
            if step == "open":
                if c != "{":
                    raise ValueError("not an object")
                self._at, self._step = i + 1, "key"
            elif step == "key":
                if c == "}":
                    self._at, self._step = i + 1, "done"
                    continue
                got = self._value(i, final)
                if got is None:
                    return
                key, self._at = got
                if not isinstance(key, str):
                    raise ValueError("not a key")
                self._key, self._step = key, "colon"
            elif step == "colon":
                if c != ":":
                    raise ValueError("not a key")
                self._at, self._step = i + 1, "value"
            elif step == "value" and self._key == "items" and c == "[":
                self._items = self.doc["items"] = []
                self._at, self._step = i + 1, "item"
            elif step in ("value", "item"):
                if step == "item" and c == "]" and not self._items:
                    self._at, self._step = i + 1, "next"
                    continue
                got = self._value(i, final)
                if got is None:
                    return
                value, self._at = got
                if step == "item":
                    self._items.append(self.trim(value))
                    self._step = "item-next"
                else:
                    self.doc[self._key] = value
                    self._step = "next"
            elif step == "item-next" and c in ",]":
                self._at, self._step = i + 1, ("item" if c == "," else "next")
            elif step == "next" and c in ",}":
                self._at, self._step = i + 1, ("key" if c == "," else "done")
            else:
                raise ValueError(f"unexpected {c!r} in a list answer ({step})")


WriteHook = Callable[[str, str], None]
Relogin = Callable[[], Awaitable[None]]
Allowed = frozenset[tuple[str, str]]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
"""HTTP method -> Kubernetes verb (the ``verb`` label of the API-writes counter)."""
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(RuntimeError):
    """A non-2xx answer from the API server (or an ``ERROR`` event of a watch)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        """410: a resourceVersion or continue token the server no longer has (list again)."""
        return self.status == 410

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def message(self) -> str:
        """The ``message`` of the server's Status object (else the raw body)."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return self.body
        return str(doc.get("message") or self.body) if isinstance(doc, dict) else self.body


@dataclass(frozen=True)
class Resource:
    """A resource's URL parts: ``group`` '' for the core API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
EVENTS = Resource("", "v1", "events")
CONFIGMAPS = Resource("", "v1", "configmaps")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
SECRETS = Resource("", "v1", "secrets")
SUBJECTACCESSREVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False
)
VALIDATINGWEBHOOKCONFIGURATIONS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False
)
BATCHJOBS = Resource("kubatch.io", "v1alpha1", "batchjobs")
JOBDEFINITIONS = Resource("kubatch.io", "v1alpha1", "jobdefinitions")
JOBQUEUES = Resource("kubatch.io", "v1alpha1", "jobqueues", namespaced=False)
COMPUTEENVIRONMENTS = Resource("kubatch.io", "v1alpha1", "computeenvironments", namespaced=False)
CONSUMABLERESOURCES = Resource("kubatch.io", "v1alpha1", "consumableresources", namespaced=False)


@dataclass
class Counters:
    """API calls made through one login (shared by the clients derived from it)."""

    reads: int = 0
    writes: int = 0


class _Pool:
    """The aiohttp session (connection pool), created lazily inside the running loop."""

    def __init__(self, limit: int, ssl_context: ssl.SSLContext | bool) -> None:
        self.limit = limit
        self.ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, ssl=self.ssl),
                timeout=aiohttp.ClientTimeout(total=60, sock_connect=10),
                read_bufsize=2**22,  # watch events are one JSON line each
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ssl_context(cfg: Any, host: str, *, client_cert: bool) -> ssl.SSLContext | bool:
    if not host.startswith("https"):
        return False
    ctx = ssl.create_default_context(cafile=getattr(cfg, "ssl_ca_cert", None) or None)
    if client_cert and getattr(cfg, "cert_file", None):
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not getattr(cfg, "verify_ssl", True):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _context_namespace(kubeconfig: str, context: str | None) -> str:
    """The namespace of the kubeconfig's (current) context, like kubectl's default."""
    from kubernetes_asyncio.config import kube_config

    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:  # an unreadable kubeconfig already failed to load; be lenient here
        return "default"
    if context:
        active = next((c for c in contexts if c.get("name") == context), active)
    return str(((active or {}).get("context") or {}).get("namespace") or "default")


class Kube:
    """One login and one connection pool to the API server.

    Every write is counted (``counters`` and the ``on_write(verb, resource)`` hook, the
    operator's API-writes metric). With ``allowed`` (``(verb, plural[/sub])`` pairs: the
    declared table of :mod:`kubatch.adapters.calls`), any other call of the typed methods
    raises ``UndeclaredCall`` before it is sent. Clients derived with :meth:`impersonating` or
    :meth:`with_bearer_token` share the pool, the counters and the hook; closing the client
    that logged in closes the pool (closing a derived one does nothing).
    """

    def __init__(
        self,
        config: Any,
        *,
        on_write: WriteHook | None = None,
        limit: int = 64,
        namespace: str = "default",
        relogin: Relogin | None = None,
        allowed: Allowed | None = None,
    ) -> None:
        self._config = config
        self.allowed = allowed
        self._on_write = on_write
        self._relogin = relogin
        self.host: str = str(config.host).rstrip("/")
        self.namespace = namespace
        """The default namespace of the login (kubeconfig context, or the pod's own)."""
        self.counters = Counters()
        self._pool = _Pool(limit, _ssl_context(config, self.host, client_cert=True))
        self._owner = True
        self._token: str | None = None
        self._impersonate: list[tuple[str, str]] = []

    # -- logging in ------------------------------------------------------------------------

    @classmethod
    async def from_environment(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        on_write: WriteHook | None = None,
        context: str | None = None,
        limit: int = 64,
        allowed: Allowed | None = None,
    ) -> Kube:
        """Log in like kubectl: ``kubeconfig`` or ``$KUBECONFIG`` when given, else the
        in-cluster service account when running in a pod, else ``~/.kube/config``."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                pass
            else:
                ns_file = SA_DIR / "namespace"
                namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
                return cls(
                    cfg, on_write=on_write, limit=limit, namespace=namespace, allowed=allowed
                )
        path = str(kubeconfig or Path.home() / ".kube" / "config")
        loader = await config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )

        async def relogin() -> None:
            await loader.load_and_set(cfg)

        return cls(
            cfg,
            on_write=on_write,
            limit=limit,
            namespace=_context_namespace(path, context),
            relogin=relogin,
            allowed=allowed,
        )

    # -- acting as another identity ----------------------------------------------------------

    def _derive(self) -> Kube:
        other = copy.copy(self)  # same config, pool, counters and hook
        other._owner = False
        other._impersonate = list(self._impersonate)
        return other

    def impersonating(
        self,
        user: str,
        *,
        groups: Sequence[str] = (),
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> Kube:
        """A client that acts as ``user`` (and ``groups``) through Kubernetes impersonation
        (``Impersonate-User``/``-Group``/``-Extra-*`` headers), on the same pool. The login
        itself must be allowed to ``impersonate`` them; the API server then authorizes every
        request as the impersonated identity."""
        if not user or not user.strip():
            raise ValueError("impersonating: a user name is required")
        if any(not g or not g.strip() for g in groups):
            raise ValueError(f"impersonating {user!r}: empty group name in {list(groups)!r}")
        other = self._derive()
        other._impersonate = [("Impersonate-User", user)]
        other._impersonate += [("Impersonate-Group", g) for g in groups]
        for key, values in (extra or {}).items():
            other._impersonate += [(f"Impersonate-Extra-{quote(key, safe='')}", v) for v in values]
        return other

    def with_bearer_token(self, token: str) -> Kube:
        """A client that authenticates with a caller's bearer token instead of the login's
        credentials (same server, same CA). It shares the pool unless the login uses a client
        certificate: a TLS connection that presents the certificate would authenticate as the
        certificate's identity, not the token's, so the token then gets a pool without it."""
        if not token or not token.strip() or any(c in token for c in "\r\n"):
            raise ValueError("with_bearer_token: an empty or multi-line token")
        other = self._derive()
        other._token = token.strip()
        other._impersonate = []
        other._relogin = None  # a caller's token is not ours to renew
        if getattr(self._config, "cert_file", None):
            other._pool = _Pool(
                self._pool.limit, _ssl_context(self._config, self.host, client_cert=False)
            )
            other._owner = True
        return other

    @property
    def impersonation(self) -> list[tuple[str, str]]:
        """The impersonation headers this client sends (empty: it acts as its login)."""
        return list(self._impersonate)

    # -- plumbing ----------------------------------------------------------------------------

    async def _headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(Accept="application/json")
        token = self._token or await self._config_token()
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        for key, value in self._impersonate:
            headers.add(key, value)
        return headers

    async def _config_token(self) -> str | None:
        cfg = self._config
        hook = getattr(cfg, "refresh_api_key_hook", None)
        if hook is not None:
            result = hook(cfg)
            if asyncio.iscoroutine(result):
                await result
        for name in ("BearerToken", "authorization"):
            value = cfg.get_api_key_with_prefix(name)
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return str(value)
        return None

    def _extra(self) -> dict[str, Any]:
        """Per-request options of the login: TLS server name, proxy."""
        out: dict[str, Any] = {}
        if getattr(self._config, "tls_server_name", None):
            out["server_hostname"] = self._config.tls_server_name
        if getattr(self._config, "proxy", None):
            out["proxy"] = self._config.proxy
        return out

    def _check(self, verb: str, res: Resource, sub: str = "") -> None:
        if self.allowed is not None:
            from kubatch.adapters.calls import check

            check(self.allowed, verb, res.plural + (f"/{sub}" if sub else ""))

    def _count(self, method: str, resource: str) -> None:
        if method == "GET":
            self.counters.reads += 1
            return
        self.counters.writes += 1
        if self._on_write is not None:
            self._on_write(VERBS.get(method, method.lower()), resource)

    async def session(self) -> aiohttp.ClientSession:
        return self._pool.session()

    async def close(self) -> None:
        """Close the pool (only the client that owns it: derived clients share it)."""
        if self._owner:
            await self._pool.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        resource: str = "",
        trim: Callable[[JsonDict], JsonDict] | None = None,
    ) -> JsonDict:
        """One API call; the decoded JSON answer. Raises :class:`ApiError` for non-2xx; a 401
        logs in again once (expired exec-plugin token) and retries. ``trim``: an answer that
        is a list has its items trimmed as they are decoded (:func:`decode_list`)."""
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        self._count(method, resource or path.rsplit("/", 2)[-2])
        session = self._pool.session()
        for attempt in (1, 2):
            headers = await self._headers()
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                async with session.request(
                    method, url, data=data, headers=headers, **self._extra()
                ) as resp:
                    raw = await resp.read()
            except aiohttp.ClientError as exc:
                if isinstance(exc, OSError):
                    raise
                # the server went away mid-answer (it restarts): a connection error, as
                # every caller expects of an unreachable API server
                raise ConnectionError(f"{method} {path}: {exc!r}") from exc
            if resp.status == 401 and attempt == 1 and self._relogin is not None:
                log.info("the API server answered 401: logging in again")
                await self._relogin()
                continue
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", raw.decode(errors="replace"))
            return decode(raw, trim) if raw else {}
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    def _selectors(labels: str | None, fields: str | None) -> dict[str, str]:
        params = {}
        if labels:
            params["labelSelector"] = labels
        if fields:
            params["fieldSelector"] = fields
        return params

    async def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        page: int = 500,
        trim: Callable[[JsonDict], JsonDict] | None = None,
        cached: bool = False,
    ) -> tuple[list[JsonDict], str]:
        """Every object of a kind (paginated; server-side label/field selectors) and the
        list's resourceVersion (where a watch resumes). A continue token that expired (410)
        during the pages starts the list over. ``trim``: applied to each object as its page
        is decoded (what is kept of a large list: the rest is never held all at once).

        ``cached``: the list may be a moment old (``resourceVersion=0``, what client-go's
        informers list with): when the first page says more follow, and no more than
        :data:`CACHED_LIST_MAX`, the rest comes whole from the API server's watch cache —
        three times as fast as etcd's pages. Right before a watch from the list's version
        (nothing is missed) and for a standby's mirror; never where the newest state is
        needed."""
        self._check("list", res)
        base = {**self._selectors(labels, fields), "limit": str(page)}
        while True:
            items: list[JsonDict] = []
            params = dict(base)
            try:
                while True:
                    doc = await self.request("GET", res.path(namespace), params=params,
                                             trim=trim)  # fmt: skip
                    meta = doc.get("metadata") or {}
                    token = meta.get("continue")
                    left = meta.get("remainingItemCount")
                    if cached and token and "continue" not in params and isinstance(left, int) \
                            and left <= CACHED_LIST_MAX:  # fmt: skip
                        whole = {**self._selectors(labels, fields), "resourceVersion": "0"}
                        try:
                            doc = await self._read_list(res.path(namespace), whole, trim)
                            meta, token = doc.get("metadata") or {}, None
                        except (ApiError, ConnectionError, TimeoutError) as exc:
                            # etcd's pages go on from the first one (its token is valid)
                            log.info("listing %s from the watch cache failed (%s): paging",
                                     res.plural, exc)  # fmt: skip
                    items.extend(doc.get("items") or [])
                    if not token:
                        return items, str(meta.get("resourceVersion") or "")
                    params["continue"] = str(token)
            except ApiError as exc:
                if not (exc.gone and "continue" in params):
                    raise
                log.info("listing %s: the continue token expired; listing again", res.plural)

    async def _read_list(
        self, path: str, params: Mapping[str, str], trim: Callable[[JsonDict], JsonDict] | None
    ) -> JsonDict:
        """One list answer read as it arrives (:class:`ListReader`): however many objects it
        holds, only what ``trim`` keeps of them is ever held. The read may take as long as
        the answer keeps coming."""
        url = f"{self.host}{path}?{urlencode(params)}"
        self._count("GET", path.rsplit("/", 1)[-1])
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        reader = ListReader(trim or (lambda obj: obj))
        text = codecs.getincrementaldecoder("utf-8")()
        try:
            async with self._pool.session().get(
                url, headers=await self._headers(), timeout=timeout, **self._extra()
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise ApiError(resp.status, resp.reason or "", raw.decode(errors="replace"))
                async for chunk in resp.content.iter_chunked(STREAM_CHUNK):
                    with gc_paused():
                        reader.feed(text.decode(chunk))
                reader.feed(text.decode(b"", final=True))
        except aiohttp.ClientError as exc:
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"GET {path}: {exc!r}") from exc
        try:
            return reader.close()
        except ValueError as exc:
            raise ConnectionError(f"GET {path}: not a list answer: {exc}") from exc

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        cached: bool = False,
    ) -> list[JsonDict]:
        """Every object of a kind (paginated), as the raw dicts the server sends (list items
        carry no ``kind``/``apiVersion``); ``cached``: see :meth:`list_with_version`."""
        items, _ = await self.list_with_version(
            res, namespace=namespace, labels=labels, fields=fields, cached=cached
        )
        return items

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        self._check("get", res)
        return await self.request("GET", res.path(namespace, name))

    async def stream(
        self,
        res: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """One watch request from ``resource_version``: yields ``(type, object)`` (BOOKMARKs
        included: they carry the latest resourceVersion) until the server ends the watch.
        Raises :class:`ApiError` — ``gone`` when the version is too old (410), as an HTTP
        answer or as an ``ERROR`` event. :func:`kubatch.adapters.watch.list_then_watch`
        is the loop around it."""
        self._check("watch", res)
        params = {
            **self._selectors(labels, fields),
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        url = self.host + res.path(namespace) + f"?{urlencode(params)}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        self._count("GET", res.plural)
        session = self._pool.session()
        headers = await self._headers()
        async with session.get(url, headers=headers, timeout=timeout, **self._extra()) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", await resp.text())
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type") or "")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise ApiError(code, str(obj.get("reason") or "watch error"), json.dumps(obj))
                yield kind, obj

    async def catch_up(
        self,
        res: Resource,
        resource_version: str,
        on_event: Callable[[str, JsonDict], None],
        *,
        namespace: str | None = None,
        seconds: int = 1,
    ) -> None:
        """One watch from ``resource_version`` that the server ends after ``seconds``: the
        events since a list, handed over as they come (bookmarks skipped)."""
        async for kind, obj in self.stream(res, resource_version, namespace=namespace,
                                           timeout_seconds=max(1, seconds)):  # fmt: skip
            if kind != "BOOKMARK":
                on_event(kind, obj)

    async def logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        follow: bool = False,
        tail_lines: int | None = None,
        timestamps: bool = False,
        previous: bool = False,
    ) -> AsyncIterator[str]:
        """A pod's container log (``GET .../pods/<pod>/log``), line by line without the line
        end. With ``follow`` the server keeps the answer open and sends lines as the container
        writes them, until the container ends (or the caller stops reading). Raises
        :class:`ApiError` as the server answers (400: the container has not started; 404)."""
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if follow:
            params["follow"] = "true"
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        if timestamps:
            params["timestamps"] = "true"
        if previous:
            params["previous"] = "true"
        path = PODS.path(namespace, pod, "log")
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        timeout = aiohttp.ClientTimeout(
            total=None if follow else 120, sock_connect=10, sock_read=None if follow else 60
        )
        self._count("GET", "pods/log")
        session = self._pool.session()
        headers = await self._headers()
        headers["Accept"] = "*/*"
        async with session.get(url, headers=headers, timeout=timeout, **self._extra()) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", await resp.text())
            pending = b""
            async for chunk in resp.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")

    async def watch(
        self,
        res: Resource,
        on_event: Callable[[str, JsonDict], None],
        *,
        namespace: str | None = None,
        labels: str | None = None,
        timeout_seconds: int = 300,
        **options: Any,
    ) -> None:
        """List, then watch ``res`` for ever, calling ``on_event(type, object)`` (listed
        objects arrive as ``ADDED``). Server-side selectors: objects that do not match never
        cross the wire. See :func:`kubatch.adapters.watch.list_then_watch` for ``fields``,
        ``on_sync``, ``resource_version``, ``stats`` and ``backoff``."""
        from kubatch.adapters.watch import list_then_watch

        await list_then_watch(
            self,
            res,
            on_event,
            namespace=namespace,
            labels=labels,
            timeout_seconds=timeout_seconds,
            **options,
        )

    # -- writes ------------------------------------------------------------------------------

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        self._check("create", res)
        return await self.request("POST", res.path(namespace), body=body, resource=res.plural)

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        background: bool = True,
        grace_period: int | None = None,
    ) -> None:
        """Delete (a missing object is not an error); ``grace_period=0`` removes a pod now."""
        self._check("delete", res)
        body: JsonDict = {"propagationPolicy": "Background" if background else "Foreground"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            await self.request("DELETE", res.path(namespace, name), body=body, resource=res.plural)
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict:
        """JSON merge patch of the object (``status=True``: of its status subresource)."""
        self._check("patch", res, "status" if status else "")
        return await self.request(
            "PATCH",
            res.path(namespace, name, "status" if status else ""),
            body=patch,
            content_type=MERGE_PATCH,
            resource=res.plural + ("/status" if status else ""),
        )

    async def apply(
        self,
        res: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        field_manager: str = "kubatch",
        force: bool = True,
    ) -> JsonDict:
        """Server-side apply of a whole object (create or update, order-independent)."""
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            raise ValueError(f"apply {res.plural}: the object has no metadata.name")
        self._check("patch", res)
        params = {"fieldManager": field_manager, **({"force": "true"} if force else {})}
        return await self.request(
            "PATCH",
            res.path(namespace, name),
            body=body,
            params=params,
            content_type=APPLY_PATCH,
            resource=res.plural,
        )
