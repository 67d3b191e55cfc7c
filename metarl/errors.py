"""User-facing errors.

Every mistake a user can make on the command line or in a config (an unknown algorithm, a
negative shot count, an output directory that belongs to another run, a corrupt checkpoint)
raises :class:`MetaRLError` with one sentence that names the problem and what to do. The
scripts print that sentence alone, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import math


class MetaRLError(Exception):
    """A problem with the user's input, reported as one clear line."""


class CheckpointError(MetaRLError):
    """A checkpoint is missing, truncated, corrupt, or belongs to another model."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`MetaRLError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise MetaRLError(message)


SEED_LIMIT = 2**63
"""Seeds lie in ``0 .. SEED_LIMIT - 1``: numpy's seed sequences take no negative integer,
torch's generators no integer of 2**64 or more, and the scripts derive further seeds by small
offsets (``seed + 1``, ``eval_seed + 2``); a signed 64-bit range keeps every one of them valid."""


def require_seed(value: int | None, flag: str) -> None:
    """Refuse a seed that numpy or torch would reject deep inside a run (with a traceback);
    ``None`` (not given: a default applies) passes."""
    require(value is None or 0 <= value < SEED_LIMIT,
            f"{flag} must be an integer from 0 to 2^63 - 1 ({SEED_LIMIT - 1}), got {value}")


def require_positive_number(value: float | None, flag: str) -> None:
    """Refuse a step size (or scale) that is not a finite number above zero: NaN makes every
    adapted loss NaN, infinity every adapted parameter, and a negative step adapts uphill,
    none of them with an error of its own. ``None`` (not given: a default applies) passes."""
    require(value is None or (math.isfinite(value) and value > 0),
            f"{flag} must be a positive number, got {value}")
