"""Arrival stamps: strictly increasing per writer, never shared between writers."""

from __future__ import annotations

import threading

from pynenc_redis_stack.core.arrival import WRITERS, arrival_stamps


def test_stamps_of_one_writer_increase_and_keep_its_residue() -> None:
    stamps = [stamp for _ in range(50) for stamp in arrival_stamps(20, 7)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert {stamp % WRITERS for stamp in stamps} == {7}
    assert stamps[-1] < 2**53


def test_writers_taking_stamps_at_once_never_share_one() -> None:
    taken: dict[int, list[int]] = {writer: [] for writer in range(8)}

    def take(writer: int) -> None:
        for _ in range(200):
            taken[writer].extend(arrival_stamps(5, writer))

    threads = [threading.Thread(target=take, args=(writer,)) for writer in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [stamp for stamps in taken.values() for stamp in stamps]
    assert len(set(every)) == len(every) == 8 * 200 * 5
    assert all(stamps == sorted(stamps) for stamps in taken.values())
