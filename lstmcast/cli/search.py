"""`lstmcast init` and `lstmcast tune`: a starting config from the data, and a search for better settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from lstmcast.cli import contract, render
from lstmcast.cli.contract import Output
from lstmcast.cli.options import (
    ConfigArg,
    JsonOpt,
    LogOpt,
    QueryOpt,
    QuietOpt,
    SetOpt,
    TrackOpt,
    TrackRequiredOpt,
    check_seed,
    require_plot,
    source,
    tracked_config,
)

# tune's own options
BudgetOpt = Annotated[
    str, typer.Option(help="Wall-clock time for the search: 30m, 2h, or seconds.", show_default=False)
]
TrialsOpt = Annotated[
    int | None, typer.Option(min=1, help="Stop once the study has this many finished trials (all runs together).")
]
TuneOutOpt = Annotated[
    Path | None, typer.Option(help="Folder for the study, best.yaml, trials.csv [default: tune/ beside CONFIG].")
]
SpaceOpt = Annotated[
    Path | None, typer.Option(help="YAML of section.key: [choices] or {low, high[, log]} to search instead.")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        help="Study database: a URL (postgresql://… to share across machines) or SQLite path [default: DIR/study.db]."
    ),
]
TrialLimitOpt = Annotated[
    str | None,
    typer.Option(help="Stop (prune) one trial after this long [default: a quarter of --budget, at least 1m]."),
]
EnsembleOpt = Annotated[
    int, typer.Option(min=1, help="Then train best.yaml with this many seeds (train.ensemble) into DIR/model.")
]
TunePlotOpt = Annotated[Path | None, typer.Option(help="Draw each trial's validation MASE and the best so far (PNG).")]


@contract.guarded
def tune(
    ctx: typer.Context,
    config: ConfigArg,
    budget: BudgetOpt,
    trials: TrialsOpt = None,
    out: TuneOutOpt = None,
    space: SpaceOpt = None,
    storage: StorageOpt = None,
    trial_limit: TrialLimitOpt = None,
    seed: Annotated[
        int | None, typer.Option(callback=check_seed, help="Sampler seed, 0 … 4294967295 [default: train.seed].")
    ] = None,
    set_: SetOpt = None,
    train_best: Annotated[bool, typer.Option("--train", help="Then train best.yaml into DIR/model.")] = False,
    ensemble: EnsembleOpt = 1,
    plot: TunePlotOpt = None,
    track: TrackOpt = None,
    track_required: TrackRequiredOpt = False,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Search CONFIG's settings on validation rows within --budget; write DIR/best.yaml (trainable as is)."""
    from lstmcast.extras import require

    require("optuna", "tune", "lstmcast tune")
    from lstmcast.flows.study import storage_url
    from lstmcast.flows.tune import parse_budget
    from lstmcast.locations import absolute

    seconds = parse_budget(budget)
    limit = None if trial_limit is None else parse_budget(trial_limit, "--trial-limit")
    folder = out if out is not None else absolute(config).parent / "tune"
    storage_url(folder, storage)  # a secret in clear, an unknown kind, a folder or a text file: refused before work
    require_plot(plot)
    tracked = tracked_config(config, set_, track, track_required)  # the --set list with --track in it (best.yaml)

    def work(reporter: Any) -> dict[str, Any]:
        from lstmcast.flows.tune import run, train_winner

        about = {"tune.budget_seconds": seconds, "tune.trials": trials, "tune.seed": seed}
        with tracked.run(reporter, f"tune {config.stem}", "tune", **about) as tracker:  # a dead store: known now
            summary = run(
                config, folder, seconds, reporter, trials=trials, space_path=space, storage=storage, seed=seed,
                overrides=tracked.sets, trial_limit=limit, tracker=tracker,
            )  # fmt: skip
            if train_best or ensemble > 1:
                with tracked.nested(tracker, "best", "train") as best:
                    summary["trained"] = train_winner(folder, reporter, ensemble, best)
            if plot is not None:
                from lstmcast.forecast.plots import plot_tuning

                plot_tuning(plot, folder / "trials.csv")
                summary["outputs"]["plot"] = str(plot)
            if tracker is not None:
                tracker.finish_tune(summary, folder)
        return summary

    contract.run(ctx, Output(quiet, False, False, log_file, json_output), work, render.tuning, lambda summary: summary)


@contract.guarded
def init(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Argument(help="CSV, Parquet file or folder, or database URL (with --query).", show_default=False)
    ],
    target: Annotated[list[str], typer.Option(help="Column to forecast (repeatable).", show_default=False)],
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast.", show_default=False)],
    series_id: Annotated[str | None, typer.Option(help="Column naming the series (long format).")] = None,
    timestamp: Annotated[str | None, typer.Option(help="Column of times.")] = "timestamp",
    query: QueryOpt = None,
    out: Annotated[Path, typer.Option(help="Config file to write.")] = Path("lstmcast.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write a starting config for DATA: frequency, season and series found, window and epochs to match."""
    from lstmcast.flows.starter import check_out, write
    from lstmcast.locations import absolute, is_url

    check_out(out, force)
    found = source(data, query)
    where = data if is_url(data) else str(absolute(data))

    def work(_reporter: Any) -> tuple[Any, Any]:
        return write(where, target, horizon, series_id, timestamp, found.query if found else None, out)

    def show(session: contract.Session, made: tuple[Any, Any]) -> None:
        cfg, facts = made
        session.stdout(
            f"{facts.series} series, frequency {facts.freq or 'none'}, seasonal period {facts.season}: "
            f"lookback {cfg.window.lookback}, patch {cfg.model.patch}, {cfg.train.epochs} epochs"
        )
        session.stdout(f"config written to {out}")

    def summary(made: tuple[Any, Any]) -> dict[str, Any]:
        cfg, facts = made
        return {"outputs": {"config": str(out)}, "data": dataclasses.asdict(facts), "config": cfg.to_dict()}

    contract.run(ctx, Output(quiet=True, json=json_output), work, show, summary)
