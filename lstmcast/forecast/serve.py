"""Which forecaster serves each series at predict time, and the baselines' forecasts for those it does not.

The model serves a series unless it cannot (shorter than window.lookback, unseen by a model that
learned one vector per series, or a non-finite forecast: a *fallback*) or validation chose a
baseline for it (train.select: best; a series training never saw follows validation's overall
choice). A fallback uses predict.fallback: a baseline, or `error` to refuse the run. A series the
model trained on arriving shorter than its lookback is refused unless predict.short_history says
fallback (`check_history`); a series with less than one season of history gets naive, not a
seasonal naive of a shorter period. Baseline
quantiles are the point forecast plus the baseline's validation residual quantiles per horizon
step, scaled to the series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lstmcast.data import calendar
from lstmcast.data.panel import Panel
from lstmcast.errors import DataError, shown
from lstmcast.forecast import baselines, metrics
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.model.lstm import ModelSpec
from lstmcast.vocabulary import FORECASTERS

# Why a series is not forecast by the model, as the log and --json say it.
REASONS = {
    "short": "shorter than window.lookback",
    "unseen": "not in training, and the model learned one vector per training series",
    "not_finite": "the model's forecast was not finite",
    "selected": "a baseline beat the model on its validation windows",
    "new": "not in training: validation's overall choice",
}
FALLBACKS = ("short", "unseen", "not_finite")  # the model cannot serve these: predict.fallback decides


@dataclass
class Plan:
    """The forecaster of each series (panel order) and why each non-model one was chosen."""

    names: list[str]
    why: dict[str, list[int]] = field(default_factory=dict)  # reason → series positions

    def move(self, position: int, name: str, reason: str) -> None:
        self.names[position] = name
        self.why.setdefault(reason, []).append(position)

    def counts(self) -> dict[str, int]:
        return {name: self.names.count(name) for name in FORECASTERS}

    def served_by(self, name: str) -> np.ndarray:
        """The positions of the series `name` serves."""
        return np.flatnonzero(np.asarray(self.names, dtype=object) == name)


def fallback_for(ckpt: Checkpoint, fallback: str) -> str:
    """predict.fallback resolved: auto is the baseline with the lower mean validation MASE (seasonal naive without one)."""
    if fallback != "auto":
        return fallback
    return ckpt.selection.best_baseline() if ckpt.selection is not None else "seasonal_naive"


def plan(ckpt: Checkpoint, spec: ModelSpec, panel: Panel, fallback: str, select: str) -> Plan:
    """Each series' forecaster before the model runs; `fallback` is resolved (not auto).

    A series shorter than the lookback, or unseen by a model that learned one vector per series,
    gets the fallback; otherwise validation's choice for it under train.select: best (a series
    training never saw: the panel's choice).
    """
    n = len(panel)
    names = np.full(n, "model", dtype=object)
    reason = np.full(n, "", dtype=object)
    open_ = np.ones(n, dtype=bool)
    short = panel.lengths < spec.lookback
    names[short], reason[short], open_ = fallback, "short", open_ & ~short
    if spec.embeds:
        unseen = open_ & (pd.Index(ckpt.series or [None]).get_indexer(list(panel.ids)) < 0)
        names[unseen], reason[unseen], open_ = fallback, "unseen", open_ & ~unseen
    sel = ckpt.selection
    if sel is not None and select == "best":
        where = pd.Index(sel.ids).get_indexer(list(panel.ids))
        chosen = np.asarray([*sel.chosen, sel.overall(select)], dtype=object)[where]  # −1: a new series
        new = open_ & (where < 0) & (sel.overall(select) != "model")
        picked = open_ & (where >= 0) & (chosen != "model")
        names[new | picked], reason[new], reason[picked] = chosen[new | picked], "new", "selected"
    # Less than one season of history: a "seasonal" naive would repeat a shorter period. Naive, named so.
    names[(names == "seasonal_naive") & (panel.lengths < calendar.season_length(ckpt.freq))] = "naive"
    return Plan(names.tolist(), _why(reason))


def _why(reason: np.ndarray) -> dict[str, list[int]]:
    """Reason → positions, reasons in the order their first series appears (as the log names them)."""
    found = {r: np.flatnonzero(reason == r) for r in ("short", "unseen", "new", "selected")}
    found = {r: where for r, where in found.items() if len(where)}
    return {r: found[r].tolist() for r in sorted(found, key=lambda r: int(found[r][0]))}


def check_history(ckpt: Checkpoint, spec: ModelSpec, panel: Panel, plan: Plan, source: object) -> None:
    """predict.short_history: error — a series the model trained on arriving shorter than its lookback is a
    truncated extract until the config says otherwise: one line naming rows received and rows needed. New
    series may be short (they get the fallback), unless most of the run's series are (`check_most_short`)."""
    short = np.asarray(plan.why.get("short", []), dtype=np.int64)
    if not len(short):
        return
    known = short[pd.Index(ckpt.scaler.ids).get_indexer([panel.ids[i] for i in short]) >= 0]
    if len(known):
        sid, rows = panel.ids[int(known[0])], int(panel.lengths[int(known[0])])
        who = "the series" if sid is None else f"series {shown(sid)}, a series the model trained on,"
        raise DataError(
            f"{source}: {who} has {rows} rows, but the model reads {spec.lookback} (window.lookback)"
            + _truncated(spec.lookback)
        )


def check_most_short(short: int, total: int, example: tuple[object, int], need: int, source: object) -> None:
    """predict.short_history: error — most of a run's series shorter than the lookback is a truncated extract
    too, even of series the model never saw (`example`: the first one's id and rows)."""
    if total > 1 and 2 * short > total:
        raise DataError(
            f"{source}: {short} of {total} series have fewer rows than the model reads (e.g. {shown(example[0])}: "
            f"{example[1]} rows of the {need} needed, window.lookback)" + _truncated(need)
        )


def _truncated(need: int) -> str:
    return (
        f" — a truncated extract? Give every series at least {need} rows, or set predict.short_history: fallback "
        "(predict --short-history fallback) to forecast such series by predict.fallback"
    )


def refuse(plan: Plan, panel: Panel, spec: ModelSpec, source: object) -> None:
    """predict.fallback: error — one line naming how many series the model cannot serve, and which."""
    for reason in FALLBACKS:
        where = plan.why.get(reason)
        if not where:
            continue
        ids = [panel.ids[i] for i in where]
        which = "the series" if ids[0] is None else f"{len(ids)} series ({_examples(ids)})"
        detail = f" (e.g. {panel.lengths[where[0]]} rows for lookback {spec.lookback})" if reason == "short" else ""
        raise DataError(
            f"{which} of {source}: {REASONS[reason]}{detail} — predict.fallback is error; set it (or --fallback) to "
            "seasonal_naive or naive to forecast them with a baseline"
            + (", or supply more history" if reason == "short" else "")
        )


def examples(plan: Plan, ids: list[str | None], most: int = 5) -> dict[str, dict[str, object]]:
    """For the log and --json: per reason, how many series and the first few ids."""
    out = {}
    for reason, where in plan.why.items():
        out[reason] = {"count": len(where), "examples": [str(ids[i]) for i in where[:most]]}
    return out


def describe(plan: Plan, ids: list[str | None], series: int, most: int | None = 3) -> list[tuple[str, str]]:
    """(reason, log line) for each reason a baseline serves some of the `series`, naming `most` of them (None: all)."""
    lines = []
    for reason, where in plan.why.items():
        named = [ids[i] for i in (where if most is None else where[:most])]
        names = sorted({plan.names[i] for i in where})
        shown_ids = _examples(named, most, len(where))
        who = "the series" if named == [None] else f"{len(where)} of {series} series ({shown_ids})"
        served = " and ".join(n.replace("_", " ") for n in names)
        lines.append((reason, f"{who} forecast by {served}: {REASONS[reason]}"))
    return lines


def served_table(
    ckpt: Checkpoint,
    spec: ModelSpec,
    panel: Panel,
    plan: Plan,
    fallback: str,
    model_rows: Callable[[list[int]], np.ndarray],
    source: object,
) -> np.ndarray:
    """(series, horizon, columns) forecasts: `model_rows` of the positions the plan gives the model, baselines elsewhere.

    A model forecast that is not finite moves that series to `fallback` (resolved); with fallback
    `error` it refuses the run. Nothing that is not finite is ever returned.
    """
    mine = [i for i, name in enumerate(plan.names) if name == "model"]
    table = None
    if mine:
        own = model_rows(mine)
        if fallback == "error":
            check_finite(own, [panel[i][0] for i in mine], source)
        table = np.full((len(panel), *own.shape[1:]), np.nan)
        table[mine] = own
        for i in np.array(mine)[~np.isfinite(own.reshape(len(mine), -1)).all(axis=1)]:
            plan.move(int(i), fallback, "not_finite")
    if any(name != "model" for name in plan.names):
        rows = baseline_table(ckpt, spec, panel, plan)
        if table is None:
            table = np.full((len(panel), *rows.shape[1:]), np.nan)
        table[[i for i, name in enumerate(plan.names) if name != "model"]] = rows
    assert table is not None
    check_finite(table, list(panel.ids), source)
    return table


def check_finite(forecasts: np.ndarray, ids: list[str | None], source: object) -> None:
    """A forecast holding NaN or infinity is never written: (series, …) forecasts, one row per series."""
    finite = np.isfinite(forecasts.reshape(len(ids), -1)).all(axis=1)
    if not finite.all():
        bad = [ids[i] for i in np.flatnonzero(~finite)]
        which = "the series" if bad[0] is None else f"series {shown(bad[0])}"
        if len(bad) > 1:
            which += f" and {len(bad) - 1} more"
        raise DataError(
            f"the forecast for {which} of {source} is not finite (NaN or infinity) — check those rows for "
            "extreme values; nothing was written"
        )


def baseline_table(ckpt: Checkpoint, spec: ModelSpec, panel: Panel, plan: Plan) -> np.ndarray:
    """(baseline-served series, horizon, columns) forecasts in original units, columns laid out as the model's.

    Points repeat the last season (or value) before each series' end; with quantiles, each level
    adds the baseline's scaled validation residual quantile per step, times the series' scale.
    """
    horizon, nt, levels, median = spec.horizon, spec.n_targets, list(spec.quantiles), spec.median
    season = calendar.season_length(ckpt.freq)
    served = np.flatnonzero(np.asarray(plan.names, dtype=object) != "model")
    names = np.asarray(plan.names, dtype=object)[served]
    targets = panel.values[:, :nt]
    ends, firsts = panel.offsets[1:][served], panel.offsets[:-1][served]
    points = np.empty((len(served), horizon, nt))
    for name in sorted(set(names.tolist())):
        mine = names == name
        points[mine] = metrics.seasonal_naive(
            targets, ends[mine], horizon, baselines.season_of(name, season), firsts[mine]
        )
    if not levels:
        return points
    scales = baselines.scale_many(targets, panel.offsets, season)[served]  # (served, nt)
    out = np.empty((len(served), horizon, nt * (1 + len(levels))))
    out[..., :nt] = points
    for name in sorted(set(names.tolist())):
        mine = names == name
        per_level = (
            points[mine][..., None] + _spread(ckpt, spec, panel, name, season)[None] * scales[mine][:, None, :, None]
        )
        per_level[..., median] = points[mine]
        out[mine, :, nt:] = np.concatenate([per_level[..., q] for q in range(len(levels))], axis=-1)
    return out


def _spread(ckpt: Checkpoint, spec: ModelSpec, panel: Panel, name: str, season: int) -> np.ndarray:
    """(horizon, nt, Q) scaled residual quantiles: stored at training, else measured on this data's history."""
    stored = ckpt.selection.spread.get(name) if ckpt.selection is not None else None
    if stored:
        return np.asarray(stored, dtype=np.float64)
    horizon, nt, levels = spec.horizon, spec.n_targets, list(spec.quantiles)
    errors, scales = [], []
    for _, series in panel:  # up to five back-tests of `horizon` rows at the end of each series
        history = series.values[:, :nt]
        ends = np.arange(len(history) - horizon, max(1, len(history) - 6 * horizon), -horizon)
        ends = ends[ends >= 1]
        if not len(ends):
            continue
        f = baselines.forecasts(history, ends, horizon, season, np.zeros_like(ends))[name]
        errors.append(history[ends[:, None] + np.arange(horizon)] - f)
        scales.append(np.repeat(baselines.scale(history, season)[None], len(ends), axis=0))
    if not errors:
        return np.zeros((horizon, nt, len(levels)))
    return np.asarray(baselines.residual_spread(0.0, np.concatenate(errors), np.concatenate(scales), levels))


def _examples(ids: list[str | None], most: int | None = 3, total: int | None = None) -> str:
    """The first `most` ids (all with None), and how many more of `total` (default: all `ids`)."""
    total = len(ids) if total is None else total
    most = total if most is None else most
    more = f", … {total - most} more" if total > most else ""
    return ", ".join(shown(s, 40) for s in ids[:most]) + more
