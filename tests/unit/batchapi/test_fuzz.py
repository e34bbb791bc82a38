"""Hypothesis fuzz over botocore's input shapes of every operation the API serves (and a few
it refuses), and over raw JSON bodies: the server never answers 5xx, never crashes, and
every answer it gives conforms to botocore's output shapes (the module's server fixture)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError as BotoError
from botocore.exceptions import ParamValidationError
from botocore.model import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.batchapi.conftest import ADMIN, USER, Server
from tests.unit.batchapi.shapes import model

from kubatch.batchapi.server import OPERATIONS

NAMES = [
    "Main_Q",
    "Align_v1",
    "Align_v1:1",
    "Align_v1:2",
    "Pool_1",
    "x",
    "",
    "a" * 200,
    "arn:aws:batch:us-east-1:111111111111:job-queue/Main_Q",
    "arn:aws:batch:us-east-1:111111111111:job-definition/Align_v1:1",
    "arn:aws:batch:us-east-1:111111111111:job/abc",
    "Ref::sample",
    "*",
    "ü",
    "AWS_BATCH_X",
    "RUNNING",
    "N_TO_N",
    "container",
    "EC2",
    "SPOT",
]
OPERATION_NAMES = sorted(
    {model().operation_model(n).name for n in model().operation_names if n.lower() in OPERATIONS}
    | {
        "ListTagsForResource",
        "TagResource",
        "UntagResource",
        "CreateSchedulingPolicy",
        "SubmitServiceJob",
    }
)


def strategy(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "structure":
        if depth > 5:
            return st.just({})
        members = shape.members  # type: ignore[attr-defined]
        required = {
            n: strategy(m, depth + 1) for n, m in members.items() if n in shape.required_members
        }  # type: ignore[attr-defined]
        optional = {n: strategy(m, depth + 1) for n, m in members.items() if n not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        return st.lists(strategy(shape.member, depth + 1), max_size=3)  # type: ignore[attr-defined]
    if kind == "map":
        return st.dictionaries(
            st.sampled_from(NAMES) | st.text(max_size=8),
            strategy(shape.value, depth + 1),
            max_size=3,
        )  # type: ignore[attr-defined]
    if kind == "string":
        enum = list(getattr(shape, "enum", None) or [])
        base = st.sampled_from(NAMES) | st.text(max_size=20)
        return st.sampled_from(enum) | base if enum else base
    if kind in ("integer", "long"):
        return st.integers(-5, 20_000) | st.sampled_from([0, 1, 2, 60, 10_001, 2**31, -(2**40)])
    if kind == "boolean":
        return st.booleans()
    if kind in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    return st.none()


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(OPERATION_NAMES))
    shape = model().operation_model(name).input_shape
    params = draw(strategy(shape)) if shape is not None else {}
    return name, params


@pytest.fixture(scope="module")
def seeded(server: Server) -> Server:
    a, u = server.client(ADMIN), server.client(USER)
    a.create_compute_environment(
        computeEnvironmentName="Pool_1",
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 8},
    )
    a.create_job_queue(
        jobQueueName="Main_Q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "Pool_1"}],
    )
    u.register_job_definition(
        jobDefinitionName="Align_v1",
        type="container",
        parameters={"sample": "s"},
        containerProperties={
            "image": "busybox",
            "command": ["Ref::sample"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )
    return server


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(call=calls(), admin=st.booleans())
def test_botocore_shaped_inputs_never_get_a_5xx(
    seeded: Server, call: tuple[str, Any], admin: bool
) -> None:
    from botocore import xform_name

    name, params = call
    client = seeded.client(ADMIN if admin else USER, parameter_validation=False)
    try:
        getattr(client, xform_name(name))(**params)
    except BotoError as err:
        answer = err.response
        status = answer["ResponseMetadata"]["HTTPStatusCode"]
        message = answer["Error"]["Message"]
        assert 400 <= status < 500, (name, params, answer)
        assert message
    except (ParamValidationError, ValueError, TypeError):
        pass  # botocore could not even serialise it: nothing reached the server


def _raw(url: str, method: str, path: str, body: bytes, who: Any) -> tuple[int, Any]:
    req = AWSRequest(
        method=method, url=url + path, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(who.access_key, who.secret), "batch", "us-east-1").add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(
        prepared.url, data=body or None, method=method, headers=dict(prepared.headers)
    )
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(NAMES),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=15), inner, max_size=4)
    ),
    max_leaves=15,
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    op = draw(st.sampled_from(sorted(OPERATIONS)))
    name = model().operation_model(next(n for n in model().operation_names if n.lower() == op))
    members = list(name.input_shape.members) if name.input_shape else []
    doc: Any = draw(
        st.dictionaries(st.sampled_from(members or ["x"]), json_values, max_size=5) | json_values
    )
    kind = draw(st.sampled_from(["json", "garbage", "empty"]))
    if kind == "garbage":
        return op, draw(st.binary(max_size=40))
    return op, b"" if kind == "empty" else json.dumps(doc).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(call=raw_bodies(), admin=st.booleans())
def test_raw_json_bodies_never_get_a_5xx(
    seeded: Server, call: tuple[str, bytes], admin: bool
) -> None:
    op, body = call
    status, answer = _raw(seeded.url, "POST", f"/v1/{op}", body, ADMIN if admin else USER)
    assert status < 500, (op, body, answer)
    if status >= 400:
        assert answer.get("message"), answer
        assert answer.get("__type"), answer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1/submitjob"),
        ("PUT", "/v1/tags/x"),
        ("POST", "/v2/submitjob"),
        ("POST", "/v1/createschedulingpolicy"),
        ("POST", "/v1/"),
        ("GET", "/v1/tags/"),
    ],
)
def test_other_paths_are_client_errors(seeded: Server, method: str, path: str) -> None:
    status, answer = _raw(seeded.url, method, path, b"", USER)
    assert status == 400, answer
    assert answer["__type"] == "ClientException", answer
