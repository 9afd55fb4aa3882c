"""`lstmcast predict`, `evaluate` and `inspect`: the commands that use a trained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lstmcast.cli import contract, render
from lstmcast.cli.contract import Output
from lstmcast.cli.options import (
    AddressOpt,
    ArchiveOpt,
    CheckpointArg,
    CpusOpt,
    EngineOpt,
    FallbackOpt,
    JsonOpt,
    LogOpt,
    NoArchiveOpt,
    ProfileOpt,
    QueryOpt,
    QuietOpt,
    RegroupOpt,
    Select,
    SelectOpt,
    ShortHistoryOpt,
    TrackOpt,
    TrackRequiredOpt,
    VerboseOpt,
    WorkersOpt,
    destination,
    require_plot,
    source,
    tracked_checkpoint,
    value,
)
from lstmcast.errors import LstmcastError

# predict's own options
PredictData = Annotated[
    str,
    typer.Option(
        help="CSV, Parquet file or folder, or database URL with at least the last window.lookback rows.",
        show_default=False,
    ),
]
ForecastOut = Annotated[
    str | None,
    typer.Option(
        help="Forecast file, .csv or .parquet [default: forecast.csv beside the checkpoint]; may hold "
        "{origin:%Y-%m-%d} (the first forecast time) and {run_date:%Y-%m-%d}. Or a database URL (see --table)."
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option(help="With --out DATABASE_URL: the table to write into, created if missing.", show_default=False),
]
SeriesOpt = Annotated[
    list[str] | None,
    typer.Option("--series", help="Forecast (and plot) only this series (repeatable) [default: all]."),
]
ForecastPlot = Annotated[
    Path | None,
    typer.Option(help="Also draw the recent history and the forecast (PNG): the first series, or those of --series."),
]


# predict's own options
PredictDataOpt = Annotated[
    str,
    typer.Option(
        help="CSV, Parquet file or folder, or database URL with at least the last window.lookback rows.",
        show_default=False,
    ),
]
ForecastOutOpt = Annotated[
    str | None,
    typer.Option(
        help="Forecast file, .csv or .parquet [default: forecast.csv beside the checkpoint]; may hold "
        "{origin:%Y-%m-%d} (the first forecast time) and {run_date:%Y-%m-%d}. Or a database URL (see --table)."
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option(help="With --out DATABASE_URL: the table to write into, created if missing.", show_default=False),
]
SeriesOpt = Annotated[
    list[str] | None, typer.Option("--series", help="Forecast (and plot) only this series (repeatable) [default: all].")
]
ForecastPlotOpt = Annotated[
    Path | None,
    typer.Option(help="Also draw the recent history and the forecast (PNG): the first series, or those of --series."),
]


@contract.guarded
def predict(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    data: PredictDataOpt,
    query: QueryOpt = None,
    out: ForecastOutOpt = None,
    table: TableOpt = None,
    series: SeriesOpt = None,
    plot: ForecastPlotOpt = None,
    fallback: FallbackOpt = None,
    short_history: ShortHistoryOpt = None,
    select: SelectOpt = None,
    archive: ArchiveOpt = None,
    no_archive: NoArchiveOpt = False,
    engine: EngineOpt = None,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    cpus_per_worker: CpusOpt = None,
    regroup: RegroupOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Forecast window.horizon steps past the last row of --data (every series); write them as CSV, Parquet or rows."""
    found, target = source(data, query), destination(out, table, checkpoint)
    require_plot(plot)
    chosen = (value(fallback), value(select), value(short_history))
    common = {"choices": chosen, "archive_flag": archive, "no_archive": no_archive}
    ray = {"engine": value(engine), "address": address, "workers": workers, "cpus": cpus_per_worker, "regroup": regroup}

    def work(reporter: Any) -> Any:
        outcome = _forecast(checkpoint, found, target, reporter, series, plot, common, ray)
        reporter.record(render.forecast_line(outcome))
        return outcome

    contract.run(
        ctx,
        Output(quiet, verbose, profile, log_file, json_output),
        work,
        render.prediction,
        lambda outcome: {
            "outputs": {k: str(v) for k, v in outcome.written.items()},
            "rows": outcome.rows,
            "first": outcome.first,
            **outcome.served,
        },
    )


def _forecast(
    checkpoint: Path, found: Any, target: Any, reporter: Any, series: Any, plot: Any, common: dict[str, Any],
    ray: dict[str, Any],
) -> Any:  # fmt: skip
    """predict in this process, or on a Ray cluster: the flags, else the checkpoint's engine section."""
    with reporter.timed("import"):
        from lstmcast.forecast.partition import Choices
        from lstmcast.model import checkpoint as checkpoints

    cfg = checkpoints.load(checkpoint).config.engine
    common = {**common, "choices": Choices(*common["choices"])}
    if (ray["engine"] or cfg.kind) != "ray":
        from lstmcast.flows.predict import predict as run

        return run(checkpoint, found, target, reporter, series, plot, batch_rows=cfg.batch_rows, **common)
    from lstmcast.engines.ray import Cluster
    from lstmcast.engines.ray import predict as run_ray

    if series or plot is not None:
        raise LstmcastError("--series and --plot work in one process: drop --engine ray (or them)")
    cluster = Cluster(ray["address"] or cfg.address, ray["workers"] or cfg.workers, ray["cpus"] or cfg.cpus_per_worker)
    return run_ray(
        checkpoint,
        found,
        target,
        reporter,
        cluster=cluster,
        regroup=ray["regroup"],
        batch_rows=cfg.batch_rows,
        **common,
    )


@contract.guarded
def evaluate(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    data: Annotated[
        str,
        typer.Option(help="CSV, Parquet or database URL holding the period to backtest and the history before it."),
    ],
    query: QueryOpt = None,
    stride: Annotated[int, typer.Option(min=1, help="Steps between forecast origins.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="First forecast time to score [default: the checkpoint's test period].")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last time a forecast may reach [default: the end of the checkpoint's data (data.end)]."),
    ] = None,
    season: Annotated[
        int | None,
        typer.Option(min=1, help="Seasonal period for MASE and seasonal naive [default: from the frequency]."),
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the full report as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw error by horizon step and one example origin (PNG).")] = None,
    select: Annotated[
        Select | None,
        typer.Option(
            help="Score the forecasts predict serves with this selection as 'selected' "
            "[default: the checkpoint's train.select].",
            show_default=False,
        ),
    ] = None,
    track: TrackOpt = None,
    track_required: TrackRequiredOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Backtest CHECKPOINT with rolling origins on --data; compare with naive baselines."""
    found = source(data, query)
    require_plot(plot)
    tracked = tracked_checkpoint(checkpoint, track, track_required)

    def work(reporter: Any) -> Any:
        with reporter.timed("import"):
            from lstmcast.flows.evaluate import evaluate_checkpoint

        outcome = evaluate_checkpoint(
            checkpoint, found, reporter, start=start, end=end, stride=stride, season=season, report_path=report,
            plot=plot, select=value(select),
        )  # fmt: skip
        return tracked.evaluation(reporter, outcome)

    contract.run(
        ctx,
        Output(quiet, verbose, profile, log_file, json_output),
        work,
        render.evaluation,
        lambda outcome: {"outputs": {k: str(v) for k, v in outcome.written.items()}, "report": outcome.report},
    )


@contract.guarded
def inspect(
    ctx: typer.Context,
    checkpoint: CheckpointArg,
    data: Annotated[
        str | None, typer.Option(help="Also measure the gates on this data's windows (CSV, Parquet or URL).")
    ] = None,
    query: QueryOpt = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a checkpoint's card and, with --data, how its forget/input/output gates behave."""
    found = source(data, query)

    def work(reporter: Any) -> dict[str, Any]:
        with reporter.timed("import"):
            from lstmcast.flows.inspect import inspect_checkpoint

        return inspect_checkpoint(checkpoint, found, reporter)

    contract.run(
        ctx,
        Output(quiet or json_output, False, profile, log_file, json_output),
        work,
        lambda session, report: render.card(session, report, found),
        lambda report: report,
    )
