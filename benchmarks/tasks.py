"""The benchmark's task functions: every app registers them, so ``get_invocation`` resolves
the dataset's task ids (``benchmarks.tasks.task_NN``, ``benchmarks.tasks.flow_N``) without
running anything."""

from __future__ import annotations

from collections.abc import Callable

TASK_COUNT = 20
WORKFLOW_TYPE_COUNT = 10


def _task(name: str) -> Callable[..., None]:
    def task(**_arguments: object) -> None:
        """Never run: the benchmark only stores and reads invocations of it."""

    task.__name__ = task.__qualname__ = name
    task.__module__ = __name__
    return task


TASKS = tuple(_task(f"task_{k:02d}") for k in range(TASK_COUNT))
WORKFLOWS = tuple(_task(f"flow_{k}") for k in range(WORKFLOW_TYPE_COUNT))
globals().update({function.__name__: function for function in (*TASKS, *WORKFLOWS)})
