"""The optional extras (`pip install 'lstmcast[parquet]'`, …): a missing one is one line naming the install."""

from __future__ import annotations

import importlib.util

from lstmcast.errors import LstmcastError


def require(module: str, extra: str, why: str) -> None:
    """Import `module` or stop with one line naming the pip install that brings it (before any work)."""
    try:
        __import__(module)
    except ImportError:
        raise LstmcastError(f"{why} needs {module} — install it with: pip install 'lstmcast[{extra}]'") from None


def available(module: str) -> bool:
    """Whether `module` could be imported, without importing it."""
    return importlib.util.find_spec(module) is not None
