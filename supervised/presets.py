"""Named hyper-parameter presets that reproduce the papers' settings.

Each preset is a plain dict of training-config overrides, keyed by a short name the scripts
accept as ``--preset NAME``. Sources are cited beside each entry.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {}
