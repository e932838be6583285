"""The one place the driver waits on Ray: bounded queues of tasks and of actor calls.

:func:`run_tasks` runs stateless tasks (the map job's stamp, chunk and export tasks;
Ray retries one whose worker died), at most ``limit`` in flight. :func:`run_on_actors`
keeps every actor of a pool busy and survives actors that die. Both hand each result to
the driver as it arrives, so the driver never holds every pending result, and both
raise a user error from inside a task (:class:`~radiff_scale.errors.RadiffError`) as
itself, one line, not wrapped in Ray's traceback text (:func:`result_of`).

The driver submits work items to the least loaded live actor, with at most
``in_flight`` calls queued per actor (enough to hide the hand-off, few enough to bound
memory: each queued call holds its inputs in the object store). A call whose actor
died, or whose result was lost with its node, is resubmitted to a live actor; Ray's
own ``max_task_retries`` usually does this first, on the restarted actor. Results are
handed to ``on_result`` by item key, and every consumer writes results idempotently by
key, so a duplicate never duplicates output and a retry never loses one.

Application errors (a bug, a bad input) are not retried: they surface at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

from radiff_scale.errors import RadiffError

Submit = Callable[[Any, Hashable], "ray.ObjectRef"]

#: Failures that mean "the work was lost", not "the work is wrong": worth another try.
LOST = (RayActorError, ObjectLostError)


def result_of(ref: ray.ObjectRef) -> Any:
    """``ray.get(ref)``, except that a RadiffError raised inside the task is raised as itself:
    the user's mistake reaches them as its own one line, wherever it was found."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, RadiffError):
            raise cause from None
        raise


def run_tasks(
    submit: Callable[[Any], ray.ObjectRef],
    items: Iterable[Any],
    limit: int,
    on_result: Callable[[Any], None],
) -> int:
    """Run ``submit(item)`` for every item, at most ``limit`` in flight; ``on_result(result)``
    on the driver as each finishes (any order). Returns the number of results."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    queue: deque[Any] = deque(items)
    running: list[ray.ObjectRef] = []
    done = 0
    while queue or running:
        while queue and len(running) < limit:
            running.append(submit(queue.popleft()))
        ready, running = ray.wait(running, num_returns=1)
        on_result(result_of(ready[0]))
        done += 1
    return done


@dataclass
class PoolStats:
    """What happened on the way (for logs and manifests)."""

    completed: int = 0
    resubmitted: int = 0
    actors_lost: int = 0


def run_on_actors(
    actors: list[Any],
    keys: Iterable[Hashable],
    submit: Submit,
    on_result: Callable[[Hashable, Any], None],
    in_flight: int = 2,
    max_attempts: int = 4,
    start_timeout_s: float = 1800.0,
) -> PoolStats:
    """Run ``submit(actor, key)`` for every key until each has a result or fails too often.

    ``on_result(key, result)`` runs on the driver, once per key (a key whose first
    attempt was lost gets exactly one result from its retry). Work only goes to actors
    that have started (answered a ping): on a fixed cluster smaller than the pool the
    surplus actors never get resources, and work queued on them would wait forever;
    on an autoscaling cluster they join as their nodes come up. If none has started
    after ``start_timeout_s`` (GPU nodes of an autoscaling cluster can take minutes),
    the run stops with an error naming what the actors wait for.
    """
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    pending: deque[Hashable] = deque(keys)
    attempts: dict[Hashable, int] = {}
    running: dict[ray.ObjectRef, tuple[Hashable, Any]] = {}
    starting: dict[ray.ObjectRef, Any] = {actor.ping.remote(): actor for actor in actors} if pending else {}
    load = {id(a): 0 for a in actors}
    live: list[Any] = []
    stats = PoolStats()

    def fill() -> None:
        while pending and live:
            actor = min(live, key=lambda a: load[id(a)])
            if load[id(actor)] >= in_flight:
                return
            key = pending.popleft()
            attempts[key] = attempts.get(key, 0) + 1
            running[submit(actor, key)] = (key, actor)
            load[id(actor)] += 1

    deadline = time.monotonic() + start_timeout_s
    while running or (pending and starting):
        timeout = None if live else max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(list(running) + list(starting), num_returns=1, timeout=timeout)
        if not ready:
            raise RuntimeError(
                f"no actor started within {start_timeout_s:.0f} s: the cluster has no free resources for them "
                f"(ray status shows what is pending; fewer --workers, or add nodes)"
            )
        ref = ready[0]
        if ref in starting:
            actor = starting.pop(ref)
            try:
                ray.get(ref)
            except RayActorError:
                stats.actors_lost += 1  # died before it started; the others carry on
            else:
                live.append(actor)
            if not live and not starting:
                raise RuntimeError("no actor could be started: every one died before it answered")
            fill()
            continue
        key, actor = running.pop(ref)
        load[id(actor)] -= 1
        try:
            result = result_of(ref)
        except LOST:
            if attempts[key] >= max_attempts:
                raise
            if actor in live and not _alive(actor):
                live.remove(actor)
                stats.actors_lost += 1
            if not live and not starting:
                raise
            pending.appendleft(key)
            stats.resubmitted += 1
        else:
            on_result(key, result)
            stats.completed += 1
        fill()
    return stats


def _alive(actor: Any) -> bool:
    """True if the actor answers (a restarting actor answers once it is back)."""
    try:
        return bool(ray.get(actor.ping.remote(), timeout=60))
    except (RayActorError, GetTimeoutError):
        return False
