"""A background loop's run of failures, logged so that an outage is visible without flooding
the log (the live tailer reads the log twice a second: a traceback each time would be
megabytes an hour and would bury everything else)."""

from __future__ import annotations

import logging


class Failures:
    """The first failure is logged with its traceback, then one line at the 2nd, 4th, 8th…
    in a row, and one line when the loop works again."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.count = 0

    def failed(self, exc: BaseException) -> None:
        self.count += 1
        if self.count == 1:
            self.log.error("%s failed; retrying", self.what, exc_info=exc)
        elif self.count & (self.count - 1) == 0:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.log.warning("%s still failing (%d times in a row): %s", self.what, self.count, first_line)

    def succeeded(self) -> None:
        if self.count:
            self.log.warning("%s works again after %d failures", self.what, self.count)
        self.count = 0
