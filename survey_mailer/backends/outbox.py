"""The outbox backend: one .eml file per message, named after its delivery."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import SendingStopped
from . import Envelope


class OutboxBackend:
    """Write messages to a folder; a resend overwrites the same file, never duplicates it."""

    concurrency = 1

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.eml"

    def send(self, envelope: Envelope, message: bytes) -> str:
        """Write the message atomically: a reader never sees half a file.

        A process killed mid-write leaves a `.tmp-*.part` file, never an `.eml`; it is not
        swept here, since another sender may be writing it right now. An error before the
        rename (a full disk, a folder that cannot be written) certainly delivered nothing:
        it stops the run with the message still pending, so a re-run sends it once.
        """
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        except OSError as e:
            raise SendingStopped(f"cannot write to the outbox {self.directory}: "
                                 f"{e.strerror}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(message)  # closing flushes: a full disk raises inside the try
            os.replace(tmp, self.path(envelope.key))
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise SendingStopped(f"cannot write to the outbox {self.directory}: "
                                 f"{e.strerror}") from e
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return envelope.key

    def rate_limit(self) -> float | None:
        return None

    def close(self) -> None:
        pass
