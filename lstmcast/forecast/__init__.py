"""Weights + series → forecasts and their scores.

Owns the naive baselines (`baselines`), which forecaster serves each series (`serve`), the
forecast of a partition of whole series by a checkpoint (`partition`: the one path every served
forecast takes), rolling-origin backtests and the choice of forecaster per series
(`backtest`), error measures (`metrics`) and plots (`plots`).

May import: base, data, learn, model.
"""
