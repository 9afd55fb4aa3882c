"""Writers: lstmcast's tables out of the process.

Owns the forecast CSV ([series id,] time label, one column per target and quantile, forecaster) and report
tables such as the training history, each written atomically (`lstmcast.atomic.atomic_write`:
a temporary file in the same folder, then a rename), so a reader never sees half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.atomic import atomic_write


def write_forecast(
    path: str | Path,
    labels: list[pd.Index],
    columns: list[str],
    values: np.ndarray,
    label_name: str,
    ids: list[str | None],
    series_col: str | None,
    forecasters: list[str],
) -> None:
    """Write a forecast CSV atomically: [series id,] time label, one column per target (and quantile), forecaster.

    `values` is (series, horizon, columns); long format (one block per series) when `series_col` is
    set. The last column names what produced each row: model, seasonal_naive or naive.
    """
    parts = []
    for sid, idx, block, name in zip(ids, labels, values, forecasters, strict=True):
        part = pd.DataFrame(block, columns=columns)
        part.insert(0, label_name, idx)
        if series_col is not None:
            part.insert(0, series_col, sid)
        part["forecaster"] = name
        parts.append(part)
    write_frame(path, pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0])


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of plain values (e.g. one per epoch) as a frame for `write_frame`."""
    return pd.DataFrame(rows)


def write_frame(path: str | Path, frame: pd.DataFrame) -> None:
    """Write `frame` as CSV atomically: no index column, `\\n` line ends, floats to 8 significant digits."""
    atomic_write(
        Path(path), lambda f: frame.to_csv(f, index=False, lineterminator="\n", float_format="%.8g"), text=True
    )
