"""The names lstmcast's choices are made of, defined once for every layer and the command line.

Forecasters, fallback and selection policies, error measures and score breakdowns are named
here, at the bottom of the house, so the config's knobs, the metric registry, `score` and the
CLI's `--fallback`/`--select`/`--metric`/`--by` choices read one list each — and `--help` can
show them without importing numpy.
"""

from __future__ import annotations

BASELINES = ("seasonal_naive", "naive")  # the naive forecasters a series can be served by
FORECASTERS = ("model", *BASELINES)  # the `forecaster` column's values
FALLBACKS = ("auto", *BASELINES, "error")  # predict.fallback, predict --fallback
SHORT_HISTORY = ("error", "fallback")  # predict.short_history, predict --short-history
SELECTIONS = ("model", "best")  # train.select, predict/evaluate --select
METRICS = ("mae", "rmse", "smape", "mase")  # forecast.metrics.METRICS, in report order; promote --metric
SCORE_BY = ("series", "step", "origin", "week")  # score --by
ENGINES = ("local", "ray")  # engine.kind, predict --engine
