"""Ctrl-C during a run: stop between batches, never in the middle of an update.

While a batch is collected, Ctrl-C (SIGINT) interrupts at once: the partial batch is dropped and the
run's state is the one after the previous batch, which nothing has changed since. While a batch is
learned from (update, logging, checkpoint), the first Ctrl-C only asks the run to stop once the batch
is done; a second one aborts at once, without saving (checkpoints are written atomically, so the last
one stays whole).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Self

EXIT_CODE = 130
"""Exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped on Ctrl-C; the message says what was saved and how to resume."""


class InterruptGuard:
    """Within ``with``, defers Ctrl-C while :meth:`deferred` is active; sets :attr:`requested` when it did.

    It takes over SIGINT only from Python's default handler, in the main thread (elsewhere, or where
    SIGINT is ignored or handled by someone else, Ctrl-C keeps its usual effect).
    """

    def __init__(self) -> None:
        self.requested = False
        self._deferring = False
        self._installed = False

    def __enter__(self) -> Self:
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within ``with``, the first Ctrl-C sets :attr:`requested` instead of interrupting."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._deferring and not self.requested:
            self.requested = True
            print("\nCtrl-C: stopping after this batch's update (Ctrl-C again to abort)", file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt
