"""Blocking calls on daemon threads, so that nothing a provider does can hold up quitting.

``ThreadPoolExecutor`` threads are joined when the interpreter exits, and asyncio's default
executor is joined when the loop closes: a call stuck on a hung endpoint would keep the
process alive. These helpers run each call on its own daemon thread instead and never join it.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TypeVar

_IMPORTS = threading.RLock()
"""Held while an SDK is imported. Providers poll on threads of their own, and two threads
importing packages that share dependencies (boto3, moto and runpod all use botocore or
requests) can each see the other's half-initialised module and fail with ImportError."""

T = TypeVar("T")
R = TypeVar("R")


def submit(fn: Callable[[], R], *, name: str = "runctl-call") -> Future[R]:
    """Run ``fn`` on a new daemon thread; its outcome lands in the returned future."""
    future: Future[R] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def map_all(
    fn: Callable[[T], R], items: Iterable[T], *, name: str = "runctl-call"
) -> list[Future[R]]:
    """Start ``fn(item)`` for every item at once, each on its own daemon thread."""
    return [submit(lambda item=item: fn(item), name=name) for item in items]  # type: ignore[misc]


async def run_blocking(fn: Callable[[], R], *, name: str = "runctl-call") -> R:
    """Await ``fn`` run on a daemon thread; cancelling the await abandons the thread."""
    return await asyncio.wrap_future(submit(fn, name=name))


def import_sdk(*names: str) -> None:
    """Import ``names`` one thread at a time; later ``import`` statements then find them whole."""
    with _IMPORTS:
        for name in names:
            importlib.import_module(name)
