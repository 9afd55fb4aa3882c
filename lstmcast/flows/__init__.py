"""What a command runs, end to end: each flow takes plain arguments and returns plain data.

`training` (train; `prepare` is its first step and `validate`), `predict`, `evaluate`,
`inspect`, `score` (realised accuracy from the archive), `promote` (guarded champion swaps),
`tune` (the search; `space` its search space, `study` its storage and identity), `starter` (init:
a config from the data's facts), `tracking` (MLflow, when asked: what train, tune and evaluate log,
promote's champion alias).
Flows never print: they report through a `Reporter`, and the CLI renders what they return.

May import: base, data, learn, model, forecast.
"""
