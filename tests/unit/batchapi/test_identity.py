"""Access keys: the command line's and a Secret's forms, bad entries reported and skipped,
the Secret re-read when an unknown key shows up."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from kubatch.adapters.fake import FakeKube
from kubatch.batchapi import jobs
from kubatch.batchapi.identity import Identity, KeyError_, account_for, parse_key_arg, parse_secret
from kubatch.batchapi.server import SECRETS, KeyRing


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_command_line_keys() -> None:
    who = parse_key_arg("AKIDLOCAL001:s3cr3t:team-a:admin")
    assert who == Identity("AKIDLOCAL001", "s3cr3t", "team-a", account_for("team-a"), True)
    assert "s3cr3t" not in repr(who)
    assert parse_key_arg("AKIDLOCAL001:s:ns", "123456789012").account == "123456789012"
    for bad in ("AKID", "AKIDLOCAL001:s", "AKIDLOCAL001:s:NS", "AKIDLOCAL001:s:ns:root", "A:s:ns"):
        with pytest.raises(KeyError_):
            parse_key_arg(bad)
    assert account_for("a") != account_for("b")
    assert len(account_for("a")) == 12


def test_secret_entries() -> None:
    data = {
        "AKIDSHORT001": b64("s1:team-a"),
        "AKIDJSON0001": b64(
            json.dumps(
                {
                    "secretAccessKey": "s2",
                    "namespace": "team-b",
                    "accountId": "123456789012",
                    "admin": True,
                }
            )
        ),
        "AKIDBADJSON1": b64("{not json"),
        "AKIDNOADMIN1": b64(json.dumps({"secretAccessKey": "s", "namespace": "n", "admin": "yes"})),
        "AKIDNOTB64": "***",
    }
    keys, problems = parse_secret(data)
    assert set(keys) == {"AKIDSHORT001", "AKIDJSON0001"}
    assert keys["AKIDJSON0001"].admin
    assert keys["AKIDJSON0001"].account == "123456789012"
    assert len(problems) == 3
    assert all("AKID" in p for p in problems)


def test_key_ring_reads_the_secret_again_for_an_unknown_key() -> None:
    kube = FakeKube()
    ring = KeyRing({}, kube, ("kubatch-system", "keys"), refresh=3600)

    async def scenario() -> None:
        await kube.create(
            SECRETS,
            {"metadata": {"name": "keys"}, "data": {"AKIDFIRST001": b64("s:ns")}},
            "kubatch-system",
        )
        await ring.ensure("AKIDFIRST001")
        assert ring.lookup("AKIDFIRST001") is not None
        await kube.patch(SECRETS, "keys", {"data": {"AKIDLATER001": b64("t:ns")}}, "kubatch-system")
        await ring.ensure("AKIDLATER001")  # just read: not yet (at most every 5 s)
        assert ring.lookup("AKIDLATER001") is None
        ring.loaded_at -= 6
        await ring.ensure("AKIDLATER001")
        assert ring.lookup("AKIDLATER001") is not None

    asyncio.run(scenario())


def test_missing_resources_are_named() -> None:
    template = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}, {}]}}
    assert jobs.missing_resources(template) == ["memory"]
    assert jobs.missing_resources({"spec": {"containers": [{}]}}) == ["vCPU", "memory"]
