"""The demo's pynenc app and tasks.

Every component is this package's (``redis_stack()`` without ``components``: nothing else is
chosen), so the app keeps no state outside the Redis Stack. It reads its connection from the
environment (``PYNENC__REDIS_STACK_URL``), which :mod:`.__main__` sets before importing this
module.
"""

from pynenc import PynencBuilder

app = (
    PynencBuilder()
    .app_id("pynenc-redis-stack-demo")
    .redis_stack()
    .thread_runner()
    .logging_level("error")
    .build()
)


@app.task
def square(x: int) -> int:
    """Leaf task: one child invocation per number."""
    return x * x


@app.workflow
def sum_of_squares(n: int) -> int:
    """Workflow root: fans out ``n`` children (members of its workflow) and adds their results."""
    group = square.parallelize([{"x": i} for i in range(n)])
    return sum(invocation.result for invocation in group.invocations)


class NegativeNumberError(ValueError):
    """The demo's expected failure (``check_positive(-1)``)."""


@app.task
def check_positive(x: int) -> int:
    """Fails for negative numbers: gives the demo a FAILED invocation to find."""
    if x < 0:
        raise NegativeNumberError(f"{x} is negative")
    return x
