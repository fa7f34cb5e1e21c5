"""Named stages of long operations, for whoever listens (the ``overseg`` progress bar).

Library code announces the stage it starts with :func:`stage`; nothing happens unless a
caller listens with :func:`listen`. A context variable, so concurrent callers (threads,
asyncio tasks) each hear only their own work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["listen", "stage"]

_listener: ContextVar[Callable[[str], None] | None] = ContextVar(
    "sklearn_overseg_progress", default=None
)


def stage(name: str) -> None:
    """Announce that the stage ``name`` starts (and so that the previous one ended)."""
    listener = _listener.get()
    if listener is not None:
        listener(name)


@contextlib.contextmanager
def listen(callback: Callable[[str], None]) -> Iterator[None]:
    """Call ``callback(name)`` for every :func:`stage` announced inside the block."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)
