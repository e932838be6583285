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
died, or whose result was lost with its node, is resubmitted here to a live actor, and
the actor sits out until it answers a ping again (Ray restarted it) or is known dead.
The driver does this rather than Ray's ``max_task_retries``: a retried call waits for
its own actor's restart, and when the actor's node is gone and the surviving nodes are
full (every CPU slot holds a sampler actor), that restart never comes and the stage
would hang (seen with tests/test_multinode.py before this was so). The pool's calls
are therefore made without Ray's retries (:func:`no_retry`, actors/sampling_stage.py).
Results are handed to ``on_result`` by item key, once per key, and every consumer
writes results idempotently by key, so a retry never duplicates output or loses any.

Application errors (a bug, a bad input) are not retried: they surface at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

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
    #: Calls sent again after their first try was lost (actor died, node gone, result lost).
    resubmitted: int = 0
    #: Times an actor stopped answering: died before it started, or lost calls later.
    actors_lost: int = 0
    #: Of those, times the actor answered again (Ray restarted it) and took work again.
    actors_back: int = 0


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

    ``submit`` should make a call Ray does not retry (``no_retry(actor.method).remote(...)``):
    a call Ray retries waits for its own actor instead of coming back here to go elsewhere.

    ``on_result(key, result)`` runs on the driver, once per key (a key whose first
    attempt was lost gets exactly one result from its retry). Work only goes to actors
    that answer a ping: on a fixed cluster smaller than the pool the surplus actors
    never get resources, and work queued on them would wait forever; on an autoscaling
    cluster they join as their nodes come up. An actor whose call is lost leaves the
    live set at once, so its work goes to the others instead of waiting on its restart
    (which never comes if its node is gone and no other node has room), and rejoins if
    it answers again. If no actor answers for ``start_timeout_s`` (at the start, or
    after all were lost; GPU nodes of an autoscaling cluster can take minutes), the run
    stops with an error naming what the actors wait for.
    """
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    pending: deque[Hashable] = deque(keys)
    lost_tries: dict[Hashable, int] = {}
    running: dict[ray.ObjectRef, tuple[Hashable, Any]] = {}
    # Pings of actors not (or no longer) live: each resolves when its actor answers.
    pinged: dict[ray.ObjectRef, Any] = {_ping(actor): actor for actor in actors} if pending else {}
    load = {id(a): 0 for a in actors}
    live: list[Any] = []
    ever_live: set[int] = set()
    stats = PoolStats()

    def fill() -> None:
        while pending and live:
            actor = min(live, key=lambda a: load[id(a)])
            if load[id(actor)] >= in_flight:
                return
            key = pending.popleft()
            running[submit(actor, key)] = (key, actor)
            load[id(actor)] += 1

    deadline = time.monotonic() + start_timeout_s
    while running or (pending and pinged):
        timeout = None if live else max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(list(running) + list(pinged), num_returns=1, timeout=timeout)
        if not ready:
            what = "started" if not ever_live else "answered again after the others were lost"
            raise RuntimeError(
                f"no actor {what} within {start_timeout_s:.0f} s: the cluster has no free resources for them "
                f"(ray status shows what is pending; fewer --workers, or add nodes)"
            )
        ref = ready[0]
        if ref in pinged:
            actor = pinged.pop(ref)
            try:
                ray.get(ref)
            except RayActorError:
                if id(actor) not in ever_live:
                    stats.actors_lost += 1  # died before it started; the others carry on
            else:
                if id(actor) in ever_live:
                    stats.actors_back += 1
                ever_live.add(id(actor))
                live.append(actor)
            fill()
            continue
        key, actor = running.pop(ref)
        load[id(actor)] -= 1
        try:
            result = result_of(ref)
        except LOST:
            lost_tries[key] = lost_tries.get(key, 0) + 1
            if lost_tries[key] >= max_attempts:
                raise
            if actor in live:  # its other calls fail too; it rejoins if it answers again
                live.remove(actor)
                stats.actors_lost += 1
                pinged[_ping(actor)] = actor
                if not live:
                    deadline = time.monotonic() + start_timeout_s
            pending.appendleft(key)
            stats.resubmitted += 1
        else:
            on_result(key, result)
            stats.completed += 1
        fill()
    if pending:  # nothing running, no actor live or coming back
        if not ever_live:
            raise RuntimeError("no actor could be started: every one died before it answered")
        raise RuntimeError(f"every actor of the pool died with {len(pending)} items left")
    return stats


def no_retry(method: Any) -> Any:
    """``actor.method`` with Ray's retries off: a call lost with its actor fails at once
    (``ActorUnavailableError`` while the actor restarts), so :func:`run_on_actors` can send
    it to another actor, whatever ``max_task_retries`` the actor was made with."""
    return method.options(max_task_retries=0)


def _ping(actor: Any) -> ray.ObjectRef:
    """A ping that waits out the actor's restarts (however long: its node may have to be
    replaced) and fails only once Ray gives the actor up for dead."""
    return actor.ping.options(max_task_retries=-1).remote()
