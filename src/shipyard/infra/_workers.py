"""Running many independent provider calls on a few threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["run_all"]

T = TypeVar("T")
R = TypeVar("R")


def run_all(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R | Exception]:
    """``fn`` over every item, at most ``workers`` at a time; results (or the exception
    each raised) in the items' order.

    Workers pull the next item themselves, so there is no hand-off per item: thousands of
    trivially cheap calls cost little more than running them in a loop, and slow calls
    still overlap.
    """
    results: list[R | Exception] = [None] * len(items)  # type: ignore[list-item]
    count = min(max(workers, 1), len(items))

    def one(index: int) -> None:
        try:
            results[index] = fn(items[index])
        except Exception as err:
            results[index] = err

    if count <= 1:
        for index in range(len(items)):
            one(index)
        return results
    lock = threading.Lock()
    position = [0]

    def work() -> None:
        total = len(items)
        while True:
            with lock:
                index = position[0]
                if index >= total:
                    return
                position[0] = index + 1
            one(index)

    threads = [threading.Thread(target=work, name=f"infra-worker-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
