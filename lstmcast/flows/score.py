"""Realised accuracy: archived forecasts joined with the actuals that arrived after them.

archive (what was served, per series, origin, target time) + actuals (any data source) ──▶ the
forecasts' errors next to what seasonal naive and naive would have scored from the same origins
(computed from the actuals, so they need not have been archived) ──▶ tables by series, step,
origin or week, what needs attention, and the `--fail-if` rules an alerting cron job checks.

Each figure is computed per series, then averaged over series (as `evaluate` does and the M4
competition did). MASE divides by each series' in-sample seasonal-naive error over the actuals
before its first scored origin. Baselines and that scale read the actuals carried forward over
gaps (what was known at each origin); errors are scored only where an actual was observed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from lstmcast import durations
from lstmcast.data import readers, sources
from lstmcast.data.archive import Archived
from lstmcast.errors import ConfigError, DataError, shown
from lstmcast.forecast import metrics
from lstmcast.vocabulary import BASELINES

FORECASTERS = ("served", *BASELINES)  # the served forecast, then the baselines it is compared with
MEASURES = ("mae", "rmse", "smape", "mase", "bias")
RULE_METRICS = (*MEASURES, "coverage", "missing", "relative")
WORSE_RATIO = 2.0  # a series' recent MASE this many times its earlier MASE (and above 1) needs attention
LEVEL_SHIFT = 3.0  # the window's mean this many training standard deviations from the training mean: drift
MOST_NAMED = 5  # series named per attention line
MAX_RULE_CHARS = 100  # a rule is a dozen characters; anything longer is refused before any pattern reads it
SPAN_MOST = 100 * 365.25 * 86400.0  # --since/--until spans: at most a century back
# every quantifier bounded or unambiguous: matching is linear in the (capped) text
_RULE = re.compile(
    r"\s*([a-z_]{1,20})\s*(<=|>=|<|>)\s*([-+]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][-+]?\d{1,4})?)\s*"
)
_WORSE = re.compile(r"\s*worse-than\s*=\s*([a-z_]{1,30})\s*")


@dataclass(frozen=True)
class Rule:
    """One --fail-if condition: `metric op value` on the overall figures, or worse-than=BASELINE."""

    text: str
    metric: str
    op: str
    value: float | str

    def holds(self, report: dict[str, Any]) -> str | None:
        """The alert line when the condition holds on `report` (or cannot be checked), else None."""
        overall, window = report["overall"], _window_text(report)
        if self.op == "worse-than":
            mine, theirs = overall["served"]["mase"], overall[str(self.value)]["mase"]
            if mine is None or theirs is None:
                return f"{self.text}: MASE could not be computed over {window}"
            if mine > theirs:
                return f"MASE {mine:.4g} is worse than {self.value}'s {theirs:.4g} over {window}"
            return None
        value = _rule_value(self.metric, report)
        if value is None:
            return f"{self.text}: {self.metric} could not be computed over {window}"
        threshold = float(self.value)
        held = {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold}
        return f"{self.metric} {value:.4g} {self.op} {threshold:g} over {window}" if held[self.op] else None


def parse_rule(text: str) -> Rule:
    """`mase>1.2`, `coverage<0.7`, `missing>0.1`, `relative>1`, `worse-than=seasonal_naive`."""
    if len(text) > MAX_RULE_CHARS:
        raise ConfigError(
            f"--fail-if {shown(text, 40)} is {len(text):,} characters long, not a rule — write e.g. mase>1.2"
        )
    worse = _WORSE.fullmatch(text)
    if worse:
        name = worse.group(1)
        if name not in FORECASTERS[1:]:
            raise ConfigError(f"--fail-if {shown(text)}: worse-than takes seasonal_naive or naive")
        return Rule(text, "mase", "worse-than", name)
    match = _RULE.fullmatch(text)
    if not match or match.group(1) not in RULE_METRICS or not math.isfinite(float(match.group(3))):
        raise ConfigError(
            f"--fail-if {shown(text)} is not a rule — write METRIC<VALUE or METRIC>VALUE with METRIC one of "
            f"{', '.join(RULE_METRICS)} (e.g. mase>1.2, coverage<0.7), or worse-than=seasonal_naive"
        )
    return Rule(text, match.group(1), match.group(2), float(match.group(3)))


def _rule_value(metric: str, report: dict[str, Any]) -> float | None:
    if metric == "coverage":
        return report["quantiles"]["widest"] if report.get("quantiles") else None
    if metric == "missing":
        return report["missing"]
    if metric == "relative":
        return report["relative_skill"]
    return report["overall"]["served"][metric]


def _window_text(report: dict[str, Any]) -> str:
    if not report["scored"]:
        return "the window (nothing scored)"
    return (
        f"{report['first_target']} … {report['last_target']} ({report['scored']} forecasts, {report['series']} series)"
    )


# ---------------------------------------------------------------------------- joining


def _served(archived: Archived, label: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The forecast each consumer last received per (series, origin, target time, target), and the model facts."""
    points = archived.points
    if points.empty:
        raise DataError(f"{label} holds no forecast with a target time in the chosen window — widen --since/--until")
    points = points.sort_values("issued_at", kind="stable").drop_duplicates(
        ["series", "origin", "target_time", "target"], keep="last"
    )
    used = [archived.models[m] for m in points["model_id"].unique() if m in archived.models]
    if not used:
        raise DataError(f"{label}: lstmcast_models has no row for the archived forecasts — the archive is damaged")
    kinds = {"naive" if m["time_zone"] == "" else "with offsets" for m in used if m["time_zone"] is not None}
    for key, values in [(k, {m[k] for m in used}) for k in ("timestamp_col", "series_col", "freq")] + [
        ("times", kinds)
    ]:
        if len(values) > 1:
            raise DataError(
                f"{label}: the forecasts in the window come from models with different {key} ({sorted(map(str, values))})"
                " — score each with --since/--until around the change"
            )
    latest = max(used, key=lambda m: str(m["first_issued"]))
    facts = {**latest, "levels": {}, "time_zones": {m["time_zone"] for m in used}}
    for m in sorted(used, key=lambda m: str(m["first_issued"])):
        facts["levels"].update(m["levels"])  # the newest model's training levels win
    return points.reset_index(drop=True), facts


def read_actuals(source: sources.Source, facts: dict[str, Any], targets: list[str]) -> pd.DataFrame:
    """Long actuals: series, target, target_time (as archived: UTC naive), actual; only observed values.

    Read by training's reader and rules: a value that is not a number (text, 'nan') or is infinite, an empty
    or unreadable time, an empty series id, a time twice — one error line naming the cell. Times with
    UTC offsets are converted to UTC where the archive says the model's were (times without offsets are
    compared as they are where its were); any other pairing is refused, naming both (`_times_as_archived`).
    """
    ts, sid = facts["timestamp_col"], facts["series_col"]
    wanted = [c for c in (sid, ts) if c] + targets
    raw = sources.read_source(source, wanted, targets, ts)
    lines = range(source.first_row, len(raw) + source.first_row)
    values = readers.numeric_values(raw, targets, lines, source, source.row_word)
    times = raw[ts] if raw[ts].dtype.kind == "M" else readers.parse_times(raw[ts], lines, source, ts, source.row_word)
    times = _times_as_archived(pd.Series(times), facts, source, ts)
    ids = raw[sid] if sid else pd.Series("", index=raw.index)
    if ids.isna().any():
        row = lines[int(np.flatnonzero(ids.isna().to_numpy())[0])]
        raise DataError(f"{source}: {source.row_word} {row}: empty {shown(sid)} — every row needs a series id")
    frame = pd.DataFrame({"series": ids.astype(str).to_numpy(), "target_time": times.to_numpy()})
    long = pd.concat(
        [frame.assign(target=t, actual=values[:, j]) for j, t in enumerate(targets)], ignore_index=True
    ).dropna(subset=["actual"])
    twice = long.duplicated(["series", "target", "target_time"])
    if twice.any():
        row = long[twice].iloc[0]
        where = f"series {shown(row['series'])} at " if sid else ""
        raise DataError(
            f"{source}: {where}{row['target_time']} appears twice — keep one row per time, then score again"
        )
    return long


def _times_as_archived(times: pd.Series, facts: dict[str, Any], source: Any, column: str) -> pd.Series:
    """The actuals' times on the archive's clock. The archive keeps naive times: the data's own where the model
    was trained on times without offsets, UTC where it was trained on times with offsets (lstmcast_models.time_zone
    says which; NULL: archived before it was recorded). Never shifted by a guess."""
    tz = getattr(times.dtype, "tz", None)
    aware = {bool(z) for z in facts["time_zones"] if z is not None}
    unknown = None in facts["time_zones"]
    what = f"{source}: the times in column {shown(column)}"
    if tz is None:
        if True in aware:
            zone = next(z for z in facts["time_zones"] if z)
            raise DataError(
                f"{what} have no UTC offset, but the archived forecasts are for times in {zone} (kept in UTC) — "
                "give the actuals' times with their offsets (or in UTC, ending in +00:00)"
            )
        return times
    if False in aware:
        raise DataError(
            f"{what} have a UTC offset ({tz}), but the archived forecasts are for times without one (the model "
            "was trained on naive times) — give the actuals' times as the model's data had them, without offsets"
        )
    if unknown:
        raise DataError(
            f"{what} have a UTC offset ({tz}), but the archive does not record whether its forecasts' times were "
            "UTC or local (archived before lstmcast recorded it) — give the actuals' times in UTC without an offset"
        )
    return times.dt.tz_convert("UTC").dt.tz_localize(None)


def _baselines(points: pd.DataFrame, actuals: pd.DataFrame, freq: str, season: int, label: str) -> pd.DataFrame:
    """Each forecast row with its actual (NaN where none), both baselines' forecasts and its series' MASE scale."""
    pieces = []
    observed = {key: group for key, group in actuals.groupby(["series", "target"], sort=False)}
    for (sid, target), rows in points.groupby(["series", "target"], sort=False):
        rows = rows.copy()
        seen = observed.get((sid, target))
        rows["actual"] = rows["naive"] = rows["seasonal_naive"] = np.nan
        rows["scale"] = np.nan
        if seen is not None:
            _fill_series(rows, seen, freq, season, f"{label}: series {shown(sid)}" if sid else label)
        pieces.append(rows)
    return pd.concat(pieces, ignore_index=True)


def _fill_series(rows: pd.DataFrame, seen: pd.DataFrame, freq: str, season: int, where: str) -> None:
    """Actual, naive, seasonal naive and scale for one series' rows (in place), on the model's time grid."""
    seen = seen.sort_values("target_time")
    start, end = _grid_start(seen["target_time"].iloc[0], rows["origin"].min(), freq), rows["target_time"].max()
    grid = pd.date_range(start, max(seen["target_time"].iloc[-1], end), freq=freq)
    at = grid.get_indexer(pd.DatetimeIndex(seen["target_time"]))
    if (at < 0).any():
        when = seen["target_time"].to_numpy()[np.flatnonzero(at < 0)[0]]
        raise DataError(f"{where}: the actual at {pd.Timestamp(when)} is not on the model's {freq} grid")
    values = np.full(len(grid), np.nan)
    values[at] = seen["actual"].to_numpy()
    filled = pd.Series(values).ffill().to_numpy()
    target_at = grid.get_indexer(pd.DatetimeIndex(rows["target_time"]))
    origin_at = grid.get_indexer(pd.DatetimeIndex(rows["origin"]))
    rows["actual"] = np.where(target_at >= 0, values[target_at.clip(0)], np.nan)
    ok = origin_at > 0  # an origin needs at least one actual before it
    back = np.minimum(season, origin_at.clip(1))
    step = rows["step"].to_numpy() - 1
    rows["naive"] = np.where(ok, filled[(origin_at - 1).clip(0)], np.nan)
    rows["seasonal_naive"] = np.where(ok, filled[(origin_at - back + step % back).clip(0)], np.nan)
    scored = ok & np.isfinite(rows["actual"].to_numpy())
    if scored.any():
        first = int(origin_at[scored].min())
        rows["scale"] = float(metrics.mase_scale(filled[:first, None], season)[0])


def _grid_start(first: pd.Timestamp, anchor: pd.Timestamp, freq: str) -> pd.Timestamp:
    """The grid's first time: on the forecasts' own grid (through `anchor`, an origin), at or before `first`."""
    step = to_offset(freq)
    if not isinstance(step, offsets.Tick):
        return first  # calendar frequencies (months, weeks) snap to their own anchors
    delta = pd.Timedelta(step)
    return anchor - max(0, -(-(anchor - first) // delta)) * delta


# ---------------------------------------------------------------------------- scoring


def _terms(scored: pd.DataFrame) -> pd.DataFrame:
    """Per row and forecaster: the elementwise terms every measure averages."""
    a, scale = scored["actual"].to_numpy(), scored["scale"].to_numpy()
    out = scored[["series", "target", "origin", "step", "target_time"]].copy()
    for name, col in zip(FORECASTERS, ("value", "seasonal_naive", "naive"), strict=True):
        f = scored[col].to_numpy()
        out[f"{name}.mae"] = np.abs(f - a)
        out[f"{name}.rmse"] = (f - a) ** 2
        out[f"{name}.smape"] = metrics.smape_terms(f, a)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{name}.mase"] = np.abs(f - a) / scale
        out[f"{name}.bias"] = f - a
    return out


def _grouped(terms: pd.DataFrame, key: str | None) -> pd.DataFrame:
    """Means per (key, series), RMSE rooted, then means over series: one row per key value."""
    cols = [c for c in terms.columns if "." in c]
    keys = ["series"] if key in (None, "series") else [key, "series"]
    per_series = terms.groupby(keys, sort=True)[cols].mean()
    counts = terms.groupby(keys, sort=True).size()
    for name in FORECASTERS:
        per_series[f"{name}.rmse"] = np.sqrt(per_series[f"{name}.rmse"])
    if key == "series":
        return per_series.assign(n=counts)
    if key is None:
        return per_series.mean().to_frame().T.assign(n=int(counts.sum()))
    return per_series.groupby(level=0).mean().assign(n=counts.groupby(level=0).sum())


def _rows_of(table: pd.DataFrame, key: str | None) -> list[dict[str, Any]]:
    out = []
    for index, row in table.iterrows():
        entry: dict[str, Any] = {} if key is None else {key: _plain(index)}
        entry["n"] = int(row["n"])
        for name in FORECASTERS:
            entry[name] = {m: _num(row[f"{name}.{m}"]) for m in MEASURES}
        out.append(entry)
    return out


def _quantile_figures(scored: pd.DataFrame, quantiles: pd.DataFrame) -> dict[str, Any] | None:
    """Coverage of each central interval and the mean pinball loss, over the scored rows that have quantiles."""
    if quantiles.empty:
        return None
    key = ["series", "origin", "target_time", "target", "model_id"]
    wide = quantiles.pivot_table(index=key, columns="level", values="value", aggfunc="last").dropna(axis=1)
    joined = scored.set_index(key)[["actual"]].join(wide, how="inner")
    if joined.empty or wide.shape[1] == 0:
        return None
    levels = [float(x) for x in wide.columns]
    q = joined[wide.columns].to_numpy()
    actual = joined["actual"].to_numpy()
    coverage = metrics.coverage(q, actual, levels)
    return {
        "levels": levels,
        "rows": len(joined),
        "pinball": metrics.pinball(q, actual, levels),
        "coverage": coverage,
        "widest": next(iter(coverage.values())) if coverage else None,
    }


def score(
    archived: Archived,
    actuals: pd.DataFrame,
    facts: dict[str, Any],
    label: str,
    source: str,
    *,
    by: list[str],
    recent: float = 0.25,
) -> dict[str, Any]:
    """The realised-accuracy report (plain data): overall, by each key of `by`, quantiles and attention."""
    points = archived.points  # as `_served` left them: what consumers last received
    rows = _baselines(points, actuals, facts["freq"], int(facts["season"]), source)
    ok = np.isfinite(rows[["actual", "naive", "seasonal_naive"]].to_numpy()).all(axis=1)
    scored = rows[ok]
    report: dict[str, Any] = {
        "archive": label,
        "actuals": source,
        "season": int(facts["season"]),
        "forecasts": len(rows),
        "scored": len(scored),
        "series": int(scored["series"].nunique()),
        "origins": int(scored[["series", "origin"]].drop_duplicates().shape[0]),
        "models": sorted(points["model_id"].unique().tolist()),
        "first_target": str(scored["target_time"].min()) if len(scored) else None,
        "last_target": str(scored["target_time"].max()) if len(scored) else None,
        "missing": _missing_share(rows, actuals),
    }
    empty = {name: dict.fromkeys(MEASURES) for name in FORECASTERS}
    report["overall"] = _rows_of(_grouped(_terms(scored), None), None)[0] if len(scored) else {"n": 0, **empty}
    served, naive = report["overall"]["served"]["mase"], report["overall"]["seasonal_naive"]["mase"]
    report["relative_skill"] = served / naive if served is not None and naive else None
    report["by"] = {key: _rows_of(_grouped(_with_week(_terms(scored)), key), key) for key in by} if len(scored) else {}
    report["quantiles"] = _quantile_figures(scored, archived.quantiles) if len(scored) else None
    report["attention"] = attention(rows, scored, actuals, facts, recent)
    return report


def _with_week(terms: pd.DataFrame) -> pd.DataFrame:
    origin = pd.DatetimeIndex(terms["origin"])
    return terms.assign(week=(origin.normalize() - pd.to_timedelta(origin.day_of_week, unit="D")).strftime("%Y-%m-%d"))


def _missing_share(rows: pd.DataFrame, actuals: pd.DataFrame) -> float | None:
    """Of the forecast rows whose time has passed (at or before their series' last actual), the share without one."""
    last = actuals.groupby("series")["target_time"].max()
    due = rows["target_time"].to_numpy() <= rows["series"].map(last).to_numpy()
    if not due.any():
        return None
    return float((~np.isfinite(rows["actual"].to_numpy()[due])).mean())


# ---------------------------------------------------------------------------- attention


def attention(
    rows: pd.DataFrame, scored: pd.DataFrame, actuals: pd.DataFrame, facts: dict[str, Any], recent: float
) -> dict[str, Any]:
    """Series with no actuals yet, series much worse recently than before, and drift in the actuals."""
    archived = set(rows["series"].unique())
    with_actuals = set(actuals["series"].unique())
    unscored = sorted(archived - set(scored["series"].unique()))
    return {
        "no_actuals": [s for s in unscored if s not in with_actuals],
        "not_yet_due": [s for s in unscored if s in with_actuals],
        "worse_recently": _worse_recently(scored, recent),
        "level_shift": _level_shift(rows, actuals, facts["levels"]),
        "gaps": _gaps(rows, actuals, facts["freq"]),
    }


def _worse_recently(scored: pd.DataFrame, recent: float) -> list[dict[str, Any]]:
    """Series whose latest `recent` share of origins (at least one of four or more) has MASE ≥ 2× its earlier MASE and > 1."""
    if scored.empty:
        return []
    mase = np.abs(scored["value"] - scored["actual"]) / scored["scale"]
    frame = scored.assign(mase=mase)[["series", "origin", "mase"]]
    per_origin = frame.groupby(["series", "origin"], sort=True)["mase"].mean()
    flagged = []
    for sid, values in per_origin.groupby(level=0):
        n = len(values)
        if n < 4:
            continue
        k = max(1, round(n * recent))
        now, before = float(values.iloc[-k:].mean()), float(values.iloc[:-k].mean())
        if np.isfinite(now) and np.isfinite(before) and now > 1 and now >= WORSE_RATIO * before:
            flagged.append({"series": sid, "recent_mase": now, "earlier_mase": before, "recent_origins": k})
    return sorted(flagged, key=lambda f: -f["recent_mase"] / max(f["earlier_mase"], 1e-12))


def _level_shift(rows: pd.DataFrame, actuals: pd.DataFrame, levels: dict[str, list[list[float]]]) -> list[dict]:
    """Series whose actuals over the window sit ≥ LEVEL_SHIFT training standard deviations from the training mean."""
    out = []
    targets = sorted(rows["target"].unique())
    span = rows.groupby("series")["target_time"].agg(["min", "max"])
    for sid, (first, last) in span.iterrows():
        if sid not in levels:
            continue
        means, stds = levels[sid]
        seen = actuals[(actuals["series"] == sid) & actuals["target_time"].between(first, last)]
        for j, target in enumerate(targets[: len(means)]):
            values = seen.loc[seen["target"] == target, "actual"]
            if len(values) and stds[j] > 0:
                z = (float(values.mean()) - means[j]) / stds[j]
                if abs(z) >= LEVEL_SHIFT:
                    out.append({"series": sid, "target": target, "shift_in_std": z})
    return sorted(out, key=lambda f: -abs(f["shift_in_std"]))


def _gaps(rows: pd.DataFrame, actuals: pd.DataFrame, freq: str) -> list[dict[str, Any]]:
    """Series whose actuals miss more than a fifth of the time steps in the window (predict fills those in)."""
    out = []
    span = rows.groupby("series")["target_time"].agg(["min", "max"])
    times = actuals.drop_duplicates(["series", "target_time"]).groupby("series")["target_time"]
    for sid, seen in times:
        if sid not in span.index:
            continue
        first, last = span.loc[sid, "min"], min(span.loc[sid, "max"], seen.max())
        if last < first:
            continue
        expected = len(pd.date_range(first, last, freq=freq))
        present = int(seen.between(first, last).sum())
        share = 1 - present / expected if expected else 0.0
        if share > 0.2:
            out.append({"series": sid, "missing_share": share})
    return out


def names(entries: list[Any], most: int = MOST_NAMED) -> str:
    """'a, b, c and 4 more' for an attention line."""
    ids = [shown(e["series"] if isinstance(e, dict) else e, 40) for e in entries]
    text = ", ".join(ids[:most])
    return text + (f" and {len(ids) - most} more" if len(ids) > most else "")


_SPAN = re.compile(r"\s*[\d.]{1,40}\s*[a-z]{1,3}\s*")  # a number and a unit: a span, not a time


def parse_time(text: str | None, flag: str) -> datetime | pd.Timedelta | None:
    """A time (`2024-06-01 13:00`; with an offset, converted to UTC) or a span back from the latest actual (`7d`)."""
    if text is None:
        return None
    if len(text) <= durations.MAX_CHARS and _SPAN.fullmatch(text.lower()):
        seconds = durations.seconds(
            text, flag, most=SPAN_MOST, units=("h", "d", "w"), bare=False, example="7d, 48h or 2w"
        )
        return pd.Timedelta(seconds=seconds)
    try:
        stamp = pd.Timestamp(text) if len(text) <= 64 else pd.NaT  # no time is longer; pandas would read on
    except (ValueError, OverflowError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise ConfigError(
            f"{flag} {shown(text)} is not a time — write e.g. 2024-06-01, 2024-06-01 13:00, or a span back from "
            "the latest actual such as 7d, 48h, 2w"
        )
    if stamp.tz is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def run(
    store: Any,
    source: sources.Source,
    since: datetime | pd.Timedelta | None,
    until: datetime | pd.Timedelta | None,
    by: list[str],
) -> dict[str, Any]:
    """Read the archive's window and the actuals, then score; a span (`7d`) counts back from the latest actual."""
    archived = store.read(*[None if isinstance(t, pd.Timedelta) else t for t in (since, until)])
    points, facts = _served(archived, str(store))
    actuals = read_actuals(source, facts, sorted(points["target"].unique()))
    latest = actuals["target_time"].max()
    low, high = (latest - t if isinstance(t, pd.Timedelta) else t for t in (since, until))
    window = (low or pd.Timestamp.min, high or pd.Timestamp.max)
    points = points[points["target_time"].between(*window)]
    if points.empty:
        raise DataError(f"{store} holds no forecast with a target time in {low} … {high} — widen --since/--until")
    quantiles = archived.quantiles
    if len(quantiles):
        quantiles = quantiles[quantiles["target_time"].between(*window)]
    archived = Archived(points, quantiles, archived.models)
    report = score(archived, actuals, facts, str(store), str(source), by=by)
    report["since"], report["until"] = (None if t is None else str(t) for t in (low, high))
    return report


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _plain(x: Any) -> Any:
    return str(x) if isinstance(x, pd.Timestamp | datetime) else (x.item() if hasattr(x, "item") else x)
