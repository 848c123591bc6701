"""How numbers are shown: one place, so the pages and the tests agree on every label."""

from __future__ import annotations

import math

NOT_AVAILABLE = "n/a"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value) -> str:
    return NOT_AVAILABLE if _missing(value) else f"{int(value):,}"


def percent(rate) -> str:
    return NOT_AVAILABLE if _missing(rate) else f"{100 * rate:.1f}%"


def nps(value, rated_visits) -> str:
    """NPS as a whole number; "n/a" when nobody rated (an NPS of zero ratings is not zero)."""
    if not rated_visits or _missing(value):
        return NOT_AVAILABLE
    return f"{value:.0f}"


def rating(value) -> str:
    return NOT_AVAILABLE if _missing(value) else f"{value:.2f}"


def hours(value) -> str:
    return NOT_AVAILABLE if _missing(value) else f"{value:.1f} h"


def count_delta(current, previous) -> str | None:
    """Change in count, e.g. "+12 (+5.0%)"; None when there is nothing to compare."""
    if _missing(current) or _missing(previous):
        return None
    change = int(current) - int(previous)
    if previous:
        return f"{change:+,} ({100 * change / previous:+.1f}%)"
    return f"{change:+,}"


def rate_delta(current, previous) -> str | None:
    """Change of a rate in percentage points."""
    if _missing(current) or _missing(previous):
        return None
    return f"{100 * (current - previous):+.1f} pp"


def nps_delta(current, previous) -> str | None:
    if _missing(current) or _missing(previous):
        return None
    return f"{current - previous:+.0f} pts"


def rating_delta(current, previous) -> str | None:
    if _missing(current) or _missing(previous):
        return None
    return f"{current - previous:+.2f}"


def hours_delta(current, previous) -> str | None:
    if _missing(current) or _missing(previous):
        return None
    return f"{current - previous:+.1f} h"
