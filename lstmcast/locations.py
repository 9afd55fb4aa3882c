"""Where data lives: a file path or a database URL (`scheme://…`), told apart without importing anything.

A base module so that the config can resolve path knobs (and leave URLs as written) without
reaching into the data package; `data.db` owns everything else about URLs.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(text: object) -> bool:
    """A database URL (`scheme://…`) rather than a file path."""
    return isinstance(text, str) and bool(_SCHEME.match(text))
