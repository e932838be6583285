"""The driver's one scheduler: bounded queues of tasks, results as they arrive, user errors unwrapped."""

from __future__ import annotations

import pytest

from actors.scheduler import run_tasks
from radiff_scale.errors import RadiffError


def test_every_item_runs_once_with_a_bounded_queue(ray_local) -> None:
    @ray_local.remote
    def square(x: int) -> int:
        return x * x

    got: list[int] = []
    submitted: list[int] = []

    def submit(x: int):
        submitted.append(x)
        assert len(submitted) - len(got) <= 3  # never more than ``limit`` in flight
        return square.remote(x)

    assert run_tasks(submit, range(10), 3, got.append) == 10
    assert sorted(got) == [x * x for x in range(10)] and sorted(submitted) == list(range(10))


def test_a_user_error_inside_a_task_reaches_the_driver_as_itself(ray_local) -> None:
    """Not wrapped in Ray's RayTaskError text: the CLI prints its message as one line."""

    @ray_local.remote(max_retries=0)
    def refuse(x: int) -> int:
        raise RadiffError(f"item {x}: the bank file changed")

    with pytest.raises(RadiffError) as info:
        run_tasks(refuse.remote, [7], 2, lambda _: None)
    assert type(info.value) is RadiffError and str(info.value) == "item 7: the bank file changed"


def test_an_internal_failure_keeps_ray_s_report(ray_local) -> None:
    @ray_local.remote(max_retries=0)
    def broken(x: int) -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError) as info:
        run_tasks(broken.remote, [1], 2, lambda _: None)
    assert not isinstance(info.value, RadiffError) and "a bug" in str(info.value)
