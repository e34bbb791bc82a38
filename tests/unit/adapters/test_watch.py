"""The one list-then-watch loop against a scripted API server: resume from the last
resourceVersion (events and bookmarks), 410 -> relist, backoff on errors, handler failures,
``on_sync``, starting from a given version. Never dies but by cancellation."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.adapters.fake_api import FakeApi, Reply, Seen, pod, status

from kubatch.adapters.kube import PODS, Kube
from kubatch.adapters.watch import Backoff, WatchStats, list_then_watch

PATH = "/api/v1/namespaces/ns/pods"


class Script:
    """Answers list and watch requests of PATH from two queues; an empty watch queue answers
    with an empty stream (the server ending the watch), which the loop resumes from."""

    def __init__(self, lists: list[Reply], watches: list[Reply]) -> None:
        self.lists, self.watches = lists, watches

    def __call__(self, seen: Seen) -> Reply:
        queue = self.watches if seen.query.get("watch") == "1" else self.lists
        if queue:
            return queue.pop(0)
        return Reply(events=[]) if queue is self.watches else Reply(500, {})


def listing(rv: str, *names: str) -> Reply:
    return Reply(body={"metadata": {"resourceVersion": rv}, "items": [pod(n, rv) for n in names]})


def ev(kind: str, name: str, rv: str) -> dict[str, Any]:
    return {"type": kind, "object": pod(name, rv)}


def bookmark(rv: str) -> dict[str, Any]:
    return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": rv}}}


async def run_until(
    kube: Kube, done: Callable[[], bool], sleeps: list[float] | None = None, **kw: Any
) -> WatchStats:
    """Run the loop until ``done()``, with a sleep that records delays and yields."""
    stats = WatchStats()
    record = sleeps if sleeps is not None else []

    async def sleep(delay: float) -> None:
        record.append(delay)
        await asyncio.sleep(0)

    task = asyncio.create_task(
        list_then_watch(
            kube,
            PODS,
            kw.pop("on_event", lambda k, o: None),
            namespace="ns",
            stats=stats,
            sleep=sleep,
            **kw,
        )
    )
    try:
        for _ in range(2000):
            if done():
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"never done; stats {stats}")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return stats


def collect(names: list[str]) -> Callable[[str, dict[str, Any]], None]:
    """An ``on_event`` that records the objects' names."""
    return lambda kind, obj: names.append(obj["metadata"]["name"])


def watch_versions(api: FakeApi) -> list[str]:
    return [s.query["resourceVersion"] for s in api.requests("GET", PATH) if "watch" in s.query]


async def test_list_then_watch_resumes_from_events_and_bookmarks(api: FakeApi, kube: Kube) -> None:
    script = Script(
        [listing("10", "a", "b")],
        [
            Reply(events=[ev("ADDED", "c", "11"), ev("MODIFIED", "a", "12"), bookmark("20")]),
            Reply(events=[ev("DELETED", "b", "21")]),
        ],
    )
    api.on("GET", PATH, script)
    seen: list[tuple[str, str]] = []
    stats = await run_until(
        kube,
        lambda: ("DELETED", "b") in seen and len(watch_versions(api)) >= 3,
        on_event=lambda k, o: seen.append((k, o["metadata"]["name"])),
    )
    assert seen[:5] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    assert watch_versions(api)[:3] == ["10", "20", "21"]  # resumed, never listed again
    assert (stats.lists, stats.expired, stats.bookmarks, stats.events) == (1, 0, 1, 3)
    first_watch = next(s for s in api.seen if "watch" in s.query)
    assert first_watch.query["allowWatchBookmarks"] == "true"


@pytest.mark.parametrize("how", ["http", "error-event"])
async def test_gone_relists_at_once(api: FakeApi, kube: Kube, how: str) -> None:
    gone = (
        Reply(410, status(410, "Expired", "too old resource version: 10 (15)"))
        if how == "http"
        else Reply(events=[{"type": "ERROR", "object": status(410, "Expired", "too old")}])
    )
    script = Script([listing("10", "a"), listing("30", "a", "z")], [gone])
    api.on("GET", PATH, script)
    synced: list[list[str]] = []
    sleeps: list[float] = []
    stats = await run_until(
        kube,
        lambda: len(synced) == 2 and "30" in watch_versions(api),
        sleeps,
        on_sync=lambda items: synced.append([i["metadata"]["name"] for i in items]),
    )
    assert synced == [["a"], ["a", "z"]]
    assert (stats.lists, stats.expired) == (2, 1)
    assert sleeps == []  # the first 410 costs no backoff
    assert watch_versions(api)[:2] == ["10", "30"]


async def test_errors_back_off_and_resume_from_the_same_version(
    api: FakeApi, kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(
        [listing("10", "a")],
        [
            Reply(500, status(500, "InternalError", "etcd leader changed")),
            Reply(403, status(403, "Forbidden", "pods is forbidden")),
            Reply(events=[ev("ADDED", "b", "11")]),
        ],
    )
    api.on("GET", PATH, script)
    seen: list[str] = []
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, "kubatch.watch"):
        stats = await run_until(
            kube,
            lambda: "b" in seen,
            sleeps,
            on_event=collect(seen),
        )
    assert stats.lists == 1  # resumed: no relist after a 5xx or a 403
    assert watch_versions(api)[:3] == ["10", "10", "10"]
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0]
    assert "etcd leader changed" in caplog.text
    assert "forbidden" in caplog.text


async def test_a_failing_handler_is_logged_and_relists(
    api: FakeApi, kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(
        [listing("10", "a"), listing("40", "a", "bad")],
        [Reply(events=[ev("ADDED", "bad", "11")])],
    )
    api.on("GET", PATH, script)
    seen: list[str] = []
    broken = [True]

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name == "bad" and broken[0]:
            broken[0] = False
            raise KeyError("bug in a handler")
        seen.append(name)

    with caplog.at_level(logging.ERROR, "kubatch.watch"):
        stats = await run_until(kube, lambda: "bad" in seen, on_event=on_event)
    assert seen == ["a", "a", "bad"]  # the relist delivered what the handler dropped
    assert stats.lists == 2
    assert "bug in a handler" in caplog.text


async def test_a_list_that_fails_is_retried(api: FakeApi, kube: Kube) -> None:
    script = Script(
        [Reply(404, status(404, "NotFound", "the CRD is not installed")), listing("5", "a")], []
    )
    api.on("GET", PATH, script)
    seen: list[str] = []
    sleeps: list[float] = []
    stats = await run_until(
        kube,
        lambda: seen == ["a"],
        sleeps,
        on_event=collect(seen),
    )
    assert stats.lists == 1
    assert stats.failures >= 1
    assert sleeps


async def test_resume_from_a_given_version_skips_the_list(api: FakeApi, kube: Kube) -> None:
    script = Script([], [Reply(events=[ev("MODIFIED", "a", "8")])])
    api.on("GET", PATH, script)
    seen: list[str] = []
    stats = await run_until(
        kube,
        lambda: seen == ["a"],
        resource_version="7",
        on_event=collect(seen),
    )
    assert stats.lists == 0
    assert watch_versions(api)[0] == "7"


async def test_kube_watch_is_the_same_loop(api: FakeApi, kube: Kube) -> None:
    script = Script([listing("3", "a")], [Reply(events=[ev("ADDED", "b", "4")])])
    api.on("GET", PATH, script)
    seen: list[str] = []
    stats = WatchStats()
    task = asyncio.create_task(
        kube.watch(
            PODS,
            lambda k, o: seen.append(o["metadata"]["name"]),
            namespace="ns",
            labels="app=x",
            stats=stats,
        )
    )
    try:
        for _ in range(400):
            if seen == ["a", "b"]:
                break
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == ["a", "b"]
    assert stats.lists == 1
    assert all(s.query["labelSelector"] == "app=x" for s in api.seen)


async def test_trim_shapes_listed_objects_page_by_page_and_every_event(
    api: FakeApi, kube: Kube
) -> None:
    pages = [
        Reply(body={"metadata": {"resourceVersion": "", "continue": "p2"},
                    "items": [pod("a", "3"), pod("b", "3")]}),
        Reply(body={"metadata": {"resourceVersion": "3"}, "items": [pod("c", "3")]}),
    ]  # fmt: skip
    api.on("GET", PATH, Script(pages, [Reply(events=[ev("MODIFIED", "a", "4")])]))
    trimmed: list[str] = []

    def trim(obj: dict[str, Any]) -> dict[str, Any]:
        trimmed.append(obj["metadata"]["name"])
        return {"metadata": {"name": obj["metadata"]["name"]}, "kept": True}

    synced: list[list[dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    await run_until(
        kube,
        lambda: bool(events),
        on_event=lambda k, o: events.append(o),
        on_sync=synced.append,
        trim=trim,
    )
    assert [[o["metadata"]["name"] for o in items] for items in synced] == [["a", "b", "c"]]
    assert all(o == {"metadata": {"name": o["metadata"]["name"]}, "kept": True}
               for o in synced[0] + events)  # fmt: skip
    assert trimmed == ["a", "b", "c", "a"]
    assert [s.query.get("continue") for s in api.requests("GET", PATH)][:2] == [None, "p2"]


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [(1, 0.4, 0.6), (2, 0.8, 1.2), (3, 1.6, 2.4), (10, 12.8, 16.0), (100, 12.8, 16.0)],
)
def test_backoff_grows_and_is_capped(failures: int, low: float, high: float) -> None:
    rng = random.Random(failures)
    delays = [
        Backoff(first=0.5, factor=2, cap=16, jitter=0.2).delay(failures, rng) for _ in range(50)
    ]
    assert all(low <= d <= high * 1.2 for d in delays)
    assert all(d <= 16 * 1.2 for d in delays)
