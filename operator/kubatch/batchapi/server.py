"""``kubatch batch-api``: the aiohttp server of the AWS Batch API.

Every request is authenticated (SigV4 against the access keys) before it is routed; the
operation runs as the key's identity in its namespace; every error the client causes is a
4xx with AWS's error code, and nothing a client sends can make the server answer 5xx other
than a real failure of Kubernetes (``ServerException``, retried by the SDKs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from kubatch.adapters.kube import ApiError, Kube, Resource
from kubatch.adapters.protocol import KubeApi
from kubatch.adapters.serving import serve_until_signalled
from kubatch.batchapi import admin, consumable_ops, operations, sigv4
from kubatch.batchapi.context import KUBE_ERRORS, Context
from kubatch.batchapi.errors import BatchApiError, ClientError, ServerError, not_supported
from kubatch.batchapi.identity import Identity, KeyError_, parse_key_arg, parse_secret

log = logging.getLogger("kubatch.batchapi")
JsonDict = dict[str, Any]
Handler = Callable[[Context, Any], Awaitable[JsonDict]]
Observer = Callable[[str, int, JsonDict], None]
"""Called with (operation, HTTP status, JSON body) of every answer (tests check shapes)."""
SECRETS = Resource("", "v1", "secrets")
MAX_BODY = 1024 * 1024

OPERATIONS: dict[str, Handler] = {
    "submitjob": operations.submit_job,
    "describejobs": operations.describe_jobs,
    "listjobs": operations.list_jobs,
    "canceljob": operations.cancel_job,
    "terminatejob": operations.terminate_job,
    "canceljobs": operations.cancel_jobs,
    "terminatejobs": operations.terminate_jobs,
    "registerjobdefinition": operations.register_job_definition,
    "describejobdefinitions": operations.describe_job_definitions,
    "deregisterjobdefinition": operations.deregister_job_definition,
    "describejobqueues": admin.describe_job_queues,
    "describecomputeenvironments": admin.describe_compute_environments,
    "createjobqueue": admin.create_job_queue,
    "updatejobqueue": admin.update_job_queue,
    "deletejobqueue": admin.delete_job_queue,
    "createcomputeenvironment": admin.create_compute_environment,
    "updatecomputeenvironment": admin.update_compute_environment,
    "deletecomputeenvironment": admin.delete_compute_environment,
    "createconsumableresource": consumable_ops.create_consumable_resource,
    "describeconsumableresource": consumable_ops.describe_consumable_resource,
    "listconsumableresources": consumable_ops.list_consumable_resources,
    "updateconsumableresource": consumable_ops.update_consumable_resource,
    "deleteconsumableresource": consumable_ops.delete_consumable_resource,
    "listjobsbyconsumableresource": consumable_ops.list_jobs_by_consumable_resource,
}


class KeyRing:
    """Access keys from the command line and, optionally, a Kubernetes Secret (re-read every
    ``refresh`` seconds, and at once — at most every 5 s — when an unknown key shows up)."""

    def __init__(
        self,
        static: Mapping[str, Identity],
        kube: KubeApi | None = None,
        secret: tuple[str, str] | None = None,
        *,
        refresh: float = 30.0,
        default_account: str | None = None,
    ) -> None:
        self.static = dict(static)
        self.kube = kube
        self.secret = secret
        self.refresh = refresh
        self.default_account = default_account
        self.from_secret: dict[str, Identity] = {}
        self.loaded_at = 0.0

    def lookup(self, access_key: str) -> Identity | None:
        return self.static.get(access_key) or self.from_secret.get(access_key)

    async def load(self) -> None:
        if self.kube is None or self.secret is None:
            return
        ns, name = self.secret
        self.loaded_at = time.monotonic()
        try:
            obj = await self.kube.get(SECRETS, name, ns)
        except ApiError as exc:
            log.warning("cannot read the keys Secret %s/%s: %s", ns, name, exc.status)
            return
        except KUBE_ERRORS as exc:
            log.warning("cannot read the keys Secret %s/%s: %s", ns, name, exc)
            return
        keys, problems = parse_secret(obj.get("data") or {}, self.default_account)
        for problem in problems:
            log.warning("keys Secret %s/%s: %s", ns, name, problem)
        self.from_secret = keys

    async def ensure(self, access_key: str) -> None:
        stale = time.monotonic() - self.loaded_at
        if stale > self.refresh or (self.lookup(access_key) is None and stale > 5.0):
            await self.load()


class BatchApi:
    """The application: authentication, routing, errors."""

    def __init__(
        self,
        kube: KubeApi,
        keys: KeyRing,
        *,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
    ) -> None:
        self.kube = kube
        self.keys = keys
        self.region = region
        self.clock = clock
        self.observer = observer

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def authenticate(self, request: web.Request, body: bytes) -> Identity:
        raw = request.raw_path
        path, _, query = raw.partition("?")
        signed = sigv4.Request(
            method=request.method,
            raw_path=path,
            raw_query=query,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=body,
        )
        auth = signed.header_values("authorization")
        if auth:
            with contextlib.suppress(BatchApiError):  # verify() reports a malformed header
                await self.keys.ensure(sigv4.parse_authorization(auth[0]).access_key)
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        return sigv4.verify(signed, self.keys.lookup, now, self.region)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        operation = operation_of(request.method, request.raw_path)
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise ClientError(f"the request body is larger than {MAX_BODY} bytes") from None
            who = await self.authenticate(request, body)
            result = await self.route(request, who, body)
        except BatchApiError as err:
            if err.status >= 500:
                log.error("%s %s: %s (%s)", request.method, request.path, err.message, request_id)
            return self._answer(operation, err.status, err.body(), request_id, err.code)
        except Exception:  # never crash, never leak a traceback to the client
            log.exception("%s %s failed (%s)", request.method, request.path, request_id)
            internal = ServerError(f"internal error (request id {request_id})")
            return self._answer(
                operation, internal.status, internal.body(), request_id, internal.code
            )
        return self._answer(operation, 200, result, request_id)

    def _answer(
        self, operation: str, status: int, body: JsonDict, request_id: str, code: str = ""
    ) -> web.Response:
        if self.observer is not None:
            self.observer(operation, status, body)
        headers = {"x-amzn-RequestId": request_id}
        if code:
            headers["x-amzn-ErrorType"] = code
        return web.json_response(body, status=status, headers=headers)

    async def route(self, request: web.Request, who: Identity, body: bytes) -> JsonDict:
        ctx = Context(self.kube, who, self.region, self.clock)
        parts = request.raw_path.partition("?")[0].split("/")
        if len(parts) == 4 and parts[1] == "v1" and parts[2] == "tags":
            arn = unquote(parts[3])
            if request.method == "GET":
                return await admin.list_tags(ctx, arn)
            if request.method == "POST":
                return await admin.tag_resource(ctx, arn, _json(body))
            if request.method == "DELETE":
                return await admin.untag_resource(ctx, arn, request.query.getall("tagKeys", []))
            raise ClientError(f"{request.method} is not a method of /v1/tags")
        if len(parts) != 3 or parts[1] != "v1" or not parts[2]:
            raise ClientError(f"{request.path[:200]} is not an AWS Batch operation")
        name = parts[2].lower()
        handler = OPERATIONS.get(name)
        if handler is None:
            raise not_supported(f"the operation {parts[2][:80]!r}")
        if request.method != "POST":
            raise ClientError(f"{parts[2]} is called with POST, not {request.method}")
        return await handler(ctx, _json(body))


TAG_OPERATIONS = {"GET": "listtagsforresource", "POST": "tagresource", "DELETE": "untagresource"}


def operation_of(method: str, raw_path: str) -> str:
    """Pure: the lower-case operation name a request asks for ('' if none)."""
    parts = raw_path.partition("?")[0].split("/")
    if len(parts) == 4 and parts[1] == "v1" and parts[2] == "tags":
        return TAG_OPERATIONS.get(method, "")
    if len(parts) == 3 and parts[1] == "v1":
        return parts[2].lower()
    return ""


def _json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ClientError("the request body is not valid JSON") from None


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubatch batch-api",
        description="Serve the AWS Batch API (boto3, the aws CLI) against kubatch.",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("KUBATCH_BATCH_API_HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a pod)",
    )
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("KUBATCH_BATCH_API_PORT", "8000"))
    )
    p.add_argument(
        "--region",
        default=os.environ.get("KUBATCH_BATCH_API_REGION", "us-east-1"),
        help="the region clients sign for and ARNs name",
    )
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="AKID:SECRET:NAMESPACE[:admin]",
        help="an access key (repeatable; for local use and tests)",
    )
    p.add_argument(
        "--keys-secret",
        default=os.environ.get("KUBATCH_BATCH_API_KEYS_SECRET"),
        metavar="NAMESPACE/NAME",
        help="a Secret holding access keys (docs/aws-api.md)",
    )
    p.add_argument(
        "--account-id",
        default=None,
        help="account id of keys that give none (default: derived from the namespace)",
    )
    p.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: in-cluster, then ~/.kube)"
    )
    p.add_argument("--verbose", action="store_true")
    return p


async def serve(args: argparse.Namespace, ready: Callable[[int], None] | None = None) -> None:
    static = {}
    for text in args.key:
        identity = parse_key_arg(text, args.account_id)
        static[identity.access_key] = identity
    secret = None
    if args.keys_secret:
        ns, sep, name = args.keys_secret.partition("/")
        if not sep or not ns or not name:
            raise KeyError_("--keys-secret expects NAMESPACE/NAME")
        secret = (ns, name)
    if not static and secret is None:
        raise KeyError_("give at least one --key or --keys-secret: every request is signed")
    kube = await Kube.from_environment(args.kubeconfig)
    keys = KeyRing(static, kube, secret, default_account=args.account_id)
    await keys.load()

    def started(port: int) -> None:
        log.info(
            "AWS Batch API on http://%s:%s (region %s, %d key(s) given, secret %s)",
            args.host,
            port,
            args.region,
            len(static),
            args.keys_secret or "none",
        )
        if ready is not None:
            ready(port)

    try:
        app = BatchApi(kube, keys, region=args.region).app()
        await serve_until_signalled(app, args.host, args.port, started)
    finally:
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(args, ready=lambda port: print(f"listening on port {port}", flush=True)))
    except KeyError_ as exc:
        print(f"kubatch batch-api: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
