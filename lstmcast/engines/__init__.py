"""Many machines: existing engines run lstmcast's own flows and its one forecasting function on a cluster.

`ray` predicts a Parquet data set on a Ray cluster (an actor per worker holds the model and maps
`forecast.partition.Predictor` over partitions of whole series), trains with Ray Train (the same
DDP loop on N workers) and runs tune's trials as Ray tasks on one shared Optuna study. Nothing here
is a scheduler of its own; Ray (the optional extra `lstmcast[ray]`) is imported only when asked for.
Spark needs no module: `forecast.partition.Predictor` under `applyInPandas` (docs/scaling.md).

May import: base, data, learn, model, forecast, flows.
"""
