"""The windows of seek paging (``core.reads.next_seek_window``), without a server: each step,
then whole answers paged through a model of the page query (rows after the last one read,
inside the window, sorted, the first ``page_size``). tests/integration/test_read_paths.py and
test_large_answers.py run the same paging on the server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pynenc_redis_stack.core.reads import next_seek_window

Row = tuple[int, int]


def test_after_a_full_page_the_window_starts_at_its_last_value_and_spans_twice_its_range() -> None:
    # rows tied at 40 may be left: the next window starts at 40, not 41
    assert next_seek_window((0, 1000), 1000, full_page=(10, 40)) == (40, 100)


def test_a_full_page_of_ties_still_moves_on() -> None:
    # every row of the page had the same primary value: the window spans at least 2
    assert next_seek_window((0, 1000), 1000, full_page=(7, 7)) == (7, 9)


def test_the_window_never_reaches_past_the_upper_bound() -> None:
    assert next_seek_window((0, 100), 100, full_page=(50, 90)) == (90, 100)


def test_a_full_page_at_the_upper_bound_keeps_the_last_point_open() -> None:
    # more rows may be tied at the bound: read on at (high, high) until a page is not full
    assert next_seek_window((90, 100), 100, full_page=(95, 100)) == (100, 100)
    assert next_seek_window((100, 100), 100, full_page=(100, 100)) == (100, 100)
    assert next_seek_window((100, 100), 100, full_page=None) is None


def test_an_exhausted_window_gives_all_the_rest() -> None:
    assert next_seek_window((40, 100), 1000, full_page=None) == (101, 1000)


def test_an_empty_window_below_the_bound_gives_all_the_rest_and_at_the_bound_ends() -> None:
    assert next_seek_window((0, 9), 10, full_page=None) == (10, 10)
    assert next_seek_window((0, 10), 10, full_page=None) is None
    assert next_seek_window((5, 5), 5, full_page=None) is None  # bounds of one point


def test_negative_values_work_as_any_other() -> None:
    assert next_seek_window((-100, 100), 100, full_page=(-50, -40)) == (-40, -20)
    assert next_seek_window((-100, -1), 100, full_page=None) == (0, 100)


def page_through(rows: list[Row], bounds: tuple[int, int], page_size: int) -> tuple[list[Row], int]:
    """Read ``rows`` as iter_seek does, with a model of its page query; return what was read
    and how many pages it took."""
    high = bounds[1]
    window: tuple[int, int] | None = bounds
    position: Row | None = None
    read: list[Row] = []
    pages = 0
    while window is not None:
        pages += 1
        assert pages <= 2 * len(rows) + 2, "paging does not end"
        low, top = window
        candidates = sorted(r for r in rows if low <= r[0] <= top and (position is None or r > position))
        page = candidates[:page_size]
        read += page
        full_page = (page[0][0], page[-1][0]) if len(page) == page_size else None
        position = page[-1] if full_page else None
        window = next_seek_window(window, high, full_page)
    return read, pages


rows_strategy = st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 5)), unique=True, max_size=60).map(
    sorted
)


@given(rows=rows_strategy, page_size=st.integers(1, 7))
def test_paging_reads_every_row_once_in_order(rows: list[Row], page_size: int) -> None:
    read, _pages = page_through(rows, (-50, 50), page_size)
    assert read == rows


@given(rows=rows_strategy, page_size=st.integers(1, 7), low=st.integers(-60, 60), span=st.integers(0, 60))
def test_paging_within_bounds_reads_exactly_the_rows_inside(
    rows: list[Row], page_size: int, low: int, span: int
) -> None:
    bounds = (low, low + span)
    inside = [r for r in rows if bounds[0] <= r[0] <= bounds[1]]
    # iter_seek's request already selects the bounds: the model's rows are those inside
    read, _pages = page_through(inside, bounds, page_size)
    assert read == inside


def test_dense_ties_at_one_value_take_one_page_each() -> None:
    rows = [(5, n) for n in range(10)]
    read, pages = page_through(rows, (0, 10), page_size=3)
    assert read == rows
    assert pages == 5  # 3 + 3 + 3 + 1 rows, then the rest of the bounds (8..10), empty
