"""The send rate: at most N messages start in any one-second window, across threads."""

from __future__ import annotations

import collections
import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable

# A sender told to stop (a worker's SIGTERM) notices within this while waiting for a slot,
# however slow the rate: a rate of one message a minute must not hold a stop for a minute.
STOP_CHECK_SECONDS = 0.1
# 5% of a second (50 ms at the window's edge) of slack for scheduling delays between a
# slot and the wire, measured by bench/bench_send.py; it costs 5% at the rate cap.
RATE_MARGIN = 0.05


class RateLimiter:
    """Allow at most `rate` starts in any one-second window (sliding log, thread-safe)."""

    def __init__(self, rate: float | None, clock=time.monotonic, sleep=time.sleep,
                 record: list[float] | None = None, margin: float = 0.0):
        self.rate = rate
        self.record = record  # when given, every start time is appended (tests, bench)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        # Below one per second, space the starts evenly instead. `margin` lengthens the
        # window a little, so the delay between taking a slot and the request reaching
        # the wire (thread scheduling) cannot push one more into a one-second window.
        self._window = (1.0 if rate is None or rate >= 1 else 1.0 / rate) * (1 + margin)
        self._size = max(1, int(rate)) if rate else 0
        self._starts: collections.deque[float] = collections.deque()

    def acquire(self, stop: Callable[[], bool] | None = None) -> bool:
        """Block until one more start fits in the window; return True once it is taken.

        With `stop`, give up as soon as it returns true (False: no slot was taken).
        """
        if not self.rate:
            return True
        with self._lock:
            while True:
                if stop is not None and stop():
                    return False
                t = self._clock()
                while self._starts and t - self._starts[0] >= self._window:
                    self._starts.popleft()
                if len(self._starts) < self._size:
                    self._starts.append(t)
                    if self.record is not None:
                        self.record.append(t)
                    return True
                # At least a microsecond: float rounding can leave t a hair short of the
                # window's end after sleeping exactly the gap, and the loop would spin.
                self._wait(max(self._starts[0] + self._window - t, 1e-6), stop)

    def _wait(self, seconds: float, stop: Callable[[], bool] | None) -> None:
        self._sleep(seconds if stop is None else min(seconds, STOP_CHECK_SECONDS))


class SharedRateLimiter(RateLimiter):
    """The same sliding log, kept in a file under a lock: one rate for every process.

    Any number of workers (and a `campaign send` at a shell) may send at once; each start
    takes a slot from the log they share, so together they never exceed the rate. A slot
    costs a lock and a read and write of a few hundred bytes: microseconds, against the
    milliseconds of handing a message over.
    """

    def __init__(self, rate: float | None, path: str | os.PathLike, *, margin: float = 0.0,
                 record: list[float] | None = None, sleep=time.sleep):
        # Wall-clock time: monotonic clocks are not comparable between processes.
        super().__init__(rate, clock=time.time, sleep=sleep, record=record, margin=margin)
        self.path = os.fspath(path)

    def acquire(self, stop: Callable[[], bool] | None = None) -> bool:
        """Block until one more start fits in the window, across processes (see above)."""
        if not self.rate:
            return True
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    if stop is not None and stop():
                        return False
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    try:
                        t = self._clock()
                        data = os.pread(fd, 8 * (self._size + 1), 0)
                        starts = [s for s in struct.unpack(f"<{len(data) // 8}d",
                                                           data[:len(data) // 8 * 8])
                                  if t - self._window < s <= t + 1]  # a clock set back: drop
                        if len(starts) < self._size:
                            starts.append(t)
                            packed = struct.pack(f"<{len(starts)}d", *starts)
                            os.pwrite(fd, packed, 0)
                            os.ftruncate(fd, len(packed))
                            if self.record is not None:
                                self.record.append(t)
                            return True
                        wait = max(min(starts) + self._window - t, 1e-6)
                    finally:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    self._wait(wait, stop)
            finally:
                os.close(fd)
