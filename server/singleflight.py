"""One read for many waiters: concurrent callers of the same key share the first caller's result.

The page cache (server.cache) renders a page once however many ask at the same moment, and the
snapshot cache (server.feed) reads a blog's snapshot once; both keep the futures of reads under
way in a dict and run them through `run_once`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


async def run_once(pending: dict[K, asyncio.Future[T]], key: K, work: Callable[[], Awaitable[T]]) -> T:
    """Run *work*, with its future in *pending* under *key* while it runs, so joiners can await it.

    An exception reaches the caller and every joiner; the key is free again either way.
    """
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        result = await work()
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # consumed here; joiners re-raise it themselves
        raise
    finally:
        if pending.get(key) is future:
            del pending[key]
    future.set_result(result)
    return result
