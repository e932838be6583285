"""Keep every actor busy with a bounded queue, and survive actors that die.

The driver submits work items to actors round-robin with at most ``in_flight`` calls
queued per actor (enough to hide the hand-off, few enough to bound memory). A call
that fails because its actor died is resubmitted to a live actor; Ray's own
``max_task_retries`` usually does this first. Results are handed to ``on_result`` by
item key, and every consumer writes results idempotently by key, so a duplicate
never duplicates output.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

Submit = Callable[[Any, Hashable], "ray.ObjectRef"]


def run_on_actors(
    actors: list[Any],
    keys: Iterable[Hashable],
    submit: Submit,
    on_result: Callable[[Hashable, Any], None],
    in_flight: int = 2,
    max_attempts: int = 4,
) -> None:
    """Run ``submit(actor, key)`` for every key until each has a result or fails too often."""
    pending: deque[Hashable] = deque(keys)
    attempts: dict[Hashable, int] = {}
    running: dict[ray.ObjectRef, tuple[Hashable, Any]] = {}
    load = {id(a): 0 for a in actors}
    live = list(actors)

    def fill() -> None:
        while pending and live:
            actor = min(live, key=lambda a: load[id(a)])
            if load[id(actor)] >= in_flight:
                return
            key = pending.popleft()
            attempts[key] = attempts.get(key, 0) + 1
            running[submit(actor, key)] = (key, actor)
            load[id(actor)] += 1

    fill()
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        ref = ready[0]
        key, actor = running.pop(ref)
        load[id(actor)] -= 1
        try:
            result = ray.get(ref)
        except RayActorError:
            if attempts[key] >= max_attempts:
                raise
            if not _alive(actor) and actor in live:
                live.remove(actor)
            if not live:
                raise
            pending.appendleft(key)
        else:
            on_result(key, result)
        fill()


def _alive(actor: Any) -> bool:
    try:
        return bool(ray.get(actor.ping.remote(), timeout=30))
    except (RayActorError, GetTimeoutError):
        return False
