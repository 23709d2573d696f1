"""Quiet hours as a user writes them ("22:00-07:00") and as a value: the field's format,
checked where `Preferences` is validated. What the window means in a time zone (DST edges,
when a quiet period ends) is logic/quiet_hours.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local wall-clock time. `start > end` crosses midnight
    (22:00-07:00); `start == end` means no quiet hours at all, not a 24-hour window."""

    start: time
    end: time

    def __post_init__(self) -> None:
        # An aware time would be a second, conflicting time zone next to the user's.
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times; pass naive times")

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end


_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_quiet_hours(text: str) -> QuietHours:
    """Parse "HH:MM-HH:MM" (24-hour clock), e.g. "22:00-07:00"."""
    match = _QUIET_HOURS.match(text)
    if match is None:
        raise ValueError(f"quiet hours must look like '22:00-07:00', got {text!r}")
    sh, sm, eh, em = (int(group) for group in match.groups())
    for hour, minute in ((sh, sm), (eh, em)):
        if hour > 23 or minute > 59:
            raise ValueError(f"{hour:02d}:{minute:02d} is not a time of day (in {text!r})")
    return QuietHours(time(sh, sm), time(eh, em))
