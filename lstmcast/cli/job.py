"""`lstmcast score` and `lstmcast promote`: the forecasting job around the model (realised accuracy, guarded swaps)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lstmcast.cli import contract, render
from lstmcast.cli.contract import Output
from lstmcast.cli.options import (
    By,
    JsonOpt,
    LogOpt,
    Metric,
    QueryOpt,
    QuietOpt,
    TrackOpt,
    TrackRequiredOpt,
    check_wait,
    require_plot,
    source,
    tracked_checkpoint,
)
from lstmcast.errors import EXIT_ALERT, LstmcastError


@contract.guarded
def promote(
    ctx: typer.Context,
    candidate: Annotated[
        Path | None, typer.Argument(help="The retrained model.pt to consider.", show_default=False)
    ] = None,
    to: Annotated[
        Path, typer.Option("--to", help="The serving folder: DIR/model.pt is the champion.", show_default=False)
    ] = ...,  # type: ignore[assignment]
    data: Annotated[
        str | None,
        typer.Option(help="Data to backtest both on [default: the candidate's data.path].", show_default=False),
    ] = None,
    query: QueryOpt = None,
    metric: Annotated[Metric, typer.Option(help="What 'better' means (mean over series, as served).")] = Metric.mase,  # type: ignore[attr-defined]
    margin: Annotated[
        float, typer.Option(help="How much better the candidate must be, as a share (0.02 = 2% lower error).")
    ] = 0.0,
    keep: Annotated[int, typer.Option(min=1, help="Former champions kept in DIR/history/.")] = 5,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Put back the champion the current one replaced.")
    ] = False,
    wait: Annotated[
        float | None, typer.Option(callback=check_wait, help="Wait up to this many seconds for DIR's lock.")
    ] = None,
    track: TrackOpt = None,
    track_required: TrackRequiredOpt = False,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replace DIR/model.pt with CANDIDATE only if it backtests better; record every decision; or --rollback."""
    if rollback == (candidate is not None):
        raise LstmcastError("give either CANDIDATE or --rollback (e.g. lstmcast promote staging/model.pt --to serving)")
    found = source(data, query)
    tracked = tracked_checkpoint(candidate or to / "model.pt", track, track_required)  # its track.*, or --track

    def work(reporter: Any) -> dict[str, Any]:
        from lstmcast.flows import promote as guard

        if rollback:
            record = guard.rollback(to, wait=wait)
        else:
            assert candidate is not None
            record = guard.promote(
                candidate, to, found, reporter, metric=metric.value, margin=margin, keep=keep, wait=wait
            )
        reporter.record(f"{record['action']}: {record['reason']}")
        tracked.promotion(reporter, to, record, wait)  # the registry: the decision, the champion alias
        return record

    def show(session: contract.Session, record: dict[str, Any]) -> None:
        session.stdout(f"{record['action']}: {record['reason']}; {to / 'model.pt'} is {record['champion_after']}")

    contract.run(ctx, Output(quiet, False, False, log_file, json_output), work, show, lambda record: record)


# score's own options
ActualsOpt = Annotated[
    str,
    typer.Option(
        help="What happened: CSV, Parquet file or folder, or database URL (with --query).", show_default=False
    ),
]
ScoreArchiveOpt = Annotated[
    str | None,
    typer.Option(help="The archive predict --archive wrote [default: LSTMCAST_ARCHIVE].", show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(help="First target time scored: a time, or a span back from the latest actual (7d, 48h, 2w)."),
]
UntilOpt = Annotated[str | None, typer.Option(help="Last target time scored (a time or a span, as --since).")]
ByOpt = Annotated[
    list[By] | None, typer.Option("--by", help="Break the errors down by this (repeatable) [default: week].")
]
FailIfOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-if",
        help="Exit 3 with one line when this holds over the window (repeatable): mase>1.2, coverage<0.7, "
        "missing>0.1, relative>1, worse-than=seasonal_naive.",
    ),
]
ScorePlotOpt = Annotated[Path | None, typer.Option(help="Draw MASE over time next to the baselines (PNG).")]


@contract.guarded
def score(
    ctx: typer.Context,
    actuals: ActualsOpt,
    archive: ScoreArchiveOpt = None,
    query: QueryOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    by: ByOpt = None,
    fail_if: FailIfOpt = None,
    plot: ScorePlotOpt = None,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Realised accuracy of archived forecasts against the actuals, next to seasonal naive and naive."""
    from lstmcast.data import archive as archives
    from lstmcast.flows.score import parse_rule, parse_time

    rules = [parse_rule(text) for text in fail_if or []]
    window = parse_time(since, "--since"), parse_time(until, "--until")
    found = source(actuals, query)
    store = archives.resolve(archive, writing=False)
    if store is None:
        raise LstmcastError("score needs --archive URL (or LSTMCAST_ARCHIVE): the archive predict --archive wrote")
    require_plot(plot)
    breakdown = [b.value for b in by] if by else ["week"]

    def work(reporter: Any) -> dict[str, Any]:
        from lstmcast.flows.score import run

        report = run(store, found, *window, breakdown)
        report["alerts"] = [line for rule in rules if (line := _alert(rule, report)) is not None]
        if plot is not None:
            from lstmcast.forecast.plots import plot_score

            plot_score(plot, report)
        for line in report["alerts"]:
            reporter.record(f"alert: {line}")
        return report

    def show(session: contract.Session, report: dict[str, Any]) -> None:
        render.score(session, report)
        if plot is not None:
            session.stdout(f"plot written to {plot}")

    def summary(report: dict[str, Any]) -> dict[str, Any]:
        return {**report, "status": "alert" if report["alerts"] else "ok"}

    alerts = contract.run(ctx, Output(quiet, False, False, log_file, json_output), work, show, summary)["alerts"]
    if alerts:
        contract.stderr(f"alert: {alerts[0]}" + (f" (and {len(alerts) - 1} more rule(s))" if len(alerts) > 1 else ""))
        raise typer.Exit(EXIT_ALERT)


def _alert(rule: Any, report: dict[str, Any]) -> str | None:
    if not report["scored"]:
        return "no archived forecast in the window has an actual yet — the --fail-if rules cannot be checked"
    return rule.holds(report)
