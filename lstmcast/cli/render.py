"""What the commands print on stdout for people: plain lines and rich tables, from the plain data flows return.

Every function takes the invocation's `Session`, which keeps writing safe when stdout's reader
goes away; `--json` bypasses all of this (one summary line from `contract.run`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from lstmcast.cli.contract import Session


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def written(session: Session, files: dict[str, Any], skip: str = "") -> None:
    """Name every file a command wrote, once, on stdout."""
    for what, path in files.items():
        if what != skip:
            session.stdout(f"{what} written to {path}")


def forecast_line(outcome: Any) -> str:
    many = f" for {outcome.series} series" if outcome.series > 1 else ""
    counts = outcome.served.get("forecasters", {})
    others = [f"{n} by {name.replace('_', ' ')}" for name, n in counts.items() if name != "model" and n]
    by = f" ({', '.join(others)})" if others else ""
    return f"forecast of {outcome.rows} steps{many}{by} ({outcome.first} … {outcome.last}) written to {outcome.path}"


def prediction(session: Session, outcome: Any) -> None:
    session.stdout(forecast_line(outcome))
    written(session, outcome.written, skip="forecast")


def evaluation(session: Session, outcome: Any) -> None:
    with session.writing_stdout():
        _report_table(session, outcome.report)
    written(session, outcome.written)


def _report_table(session: Session, report: dict[str, Any]) -> None:
    from rich.table import Table

    from lstmcast.forecast.metrics import METRICS

    console = session.console()
    console.print(
        f"{report['origins']} forecast origins from {report['first_origin']} to {report['last_origin']} "
        f"(stride {report['stride']}, horizon {report['horizon']}, seasonal period {report['season']})",
        markup=False,
        highlight=False,
    )
    table = Table()
    table.add_column("forecaster")
    for metric in METRICS.values():
        table.add_column(metric.label, justify="right")
    for name, scores in report["overall"].items():
        table.add_row(name.replace("_", " "), *[fmt(scores[k]) for k in METRICS])
    console.print(table)
    console.print(f"relative skill (model MASE / seasonal-naive MASE): {fmt(report['relative_skill'])}")
    if "selection" in report:
        mix = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in report["selection"]["mix"].items())
        console.print(f"selected = what predict serves (train.select: {report['selection']['mode']}): {mix} series")
    if "quantiles" in report:
        q = report["quantiles"]
        console.print(f"mean pinball loss: {fmt(q['pinball'])}")
        for interval, share in q["coverage"].items():
            console.print(f"coverage of the {interval} interval: {share:.3f}")


def checks(session: Session, summary: dict[str, Any]) -> None:
    """validate's findings, one aligned line each, then ok."""
    width = max(map(len, summary))
    for key, found in summary.items():
        session.stdout(f"{key:<{width}}  {found}")
    session.stdout("ok")


def tuning(session: Session, summary: dict[str, Any]) -> None:
    best = summary.get("best")
    session.stdout(
        f"{summary['trials']} trials ({summary['complete']} complete, {summary['pruned']} pruned); "
        + (
            f"best: trial {best['trial']}, validation MASE {best['validation_mase']:.4g}"
            if best
            else "no trial finished yet"
        )
    )
    if summary.get("importance"):
        session.stdout("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["importance"].items()))
    written(session, dict(summary["outputs"].items()))
    if "trained" in summary:
        session.stdout(f"checkpoint written to {summary['trained']['checkpoint']}")


def card(session: Session, report: dict[str, Any], data: Any) -> None:
    from rich.table import Table

    with session.writing_stdout():
        console = session.console()
        table = Table(title="checkpoint", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key, found in report["card"].items():
            table.add_row(key, str(found))
        console.print(table)
        if "gates" in report:
            console.print(_gates(report["gates"], data))


def _gates(layers: list[dict[str, float]], data: Any) -> Any:
    from rich.table import Table

    gates = Table(
        title=f"gates on {data}",
        caption="memory: rows back until the running product of forget gates falls below 0.5 (median over windows)",
    )
    for name in ("layer", "forget", "input", "output", "saturated", "memory, median unit", "memory, longest unit"):
        gates.add_column(name, justify="right")
    for k, layer in enumerate(layers):
        gates.add_row(
            str(k),
            f"{layer['mean_forget']:.3f}",
            f"{layer['mean_input']:.3f}",
            f"{layer['mean_output']:.3f}",
            f"{layer['saturated_fraction']:.1%}",
            f"{layer['memory_steps']:g} rows",
            f"{layer['memory_longest_steps']:g} rows",
        )
    return gates


def score(session: Session, report: dict[str, Any]) -> None:
    from lstmcast.flows.score import names

    console = session.console()
    say = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    if not report["scored"]:
        say(f"nothing to score yet: none of the {report['forecasts']} archived forecast rows has an actual")
    else:
        say(
            f"{report['scored']} forecasts scored ({report['series']} series, {report['origins']} origins, target "
            f"times {report['first_target']} … {report['last_target']}); seasonal period {report['season']}"
        )
        for key, rows in [(None, [report["overall"]]), *report["by"].items()]:
            console.print(_score_table(key, rows))
        say(f"relative skill (MASE / seasonal-naive MASE): {fmt(report['relative_skill'])}")
    if report.get("quantiles"):
        q = report["quantiles"]
        cover = ", ".join(f"{k}: {v:.3f}" for k, v in q["coverage"].items())
        say(f"quantiles: mean pinball {fmt(q['pinball'])}; coverage {cover}")
    if report["missing"]:
        say(f"{100 * report['missing']:.1f}% of the forecasts whose time has passed have no actual")
    for line in attention_lines(report["attention"], names):
        say(f"attention: {line}")


def _score_table(key: str | None, rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from lstmcast.flows.score import MEASURES

    table = Table(title=None if key is None else f"by {key}", title_justify="left")
    if key is not None:
        table.add_column(key)
    table.add_column("n", justify="right")
    table.add_column("forecaster", no_wrap=True)
    for m in MEASURES:
        table.add_column(m if m != "mase" else "MASE", justify="right")
    for row in rows:
        for i, name in enumerate(("served", "seasonal_naive", "naive")):
            first = [str(row[key]) if i == 0 else ""] if key is not None else []
            n = str(row["n"]) if i == 0 else ""
            table.add_row(*first, n, name.replace("_", " "), *[fmt(row[name][m]) for m in MEASURES])
    return table


def attention_lines(att: dict[str, Any], names: Callable[[list[Any]], str]) -> list[str]:
    lines = []
    if att["no_actuals"]:
        lines.append(f"{len(att['no_actuals'])} series have no actuals at all: {names(att['no_actuals'])}")
    if att["not_yet_due"]:
        lines.append(
            f"{len(att['not_yet_due'])} series have no actual for their forecasts yet: {names(att['not_yet_due'])}"
        )
    if att["worse_recently"]:
        w = att["worse_recently"][0]
        lines.append(
            f"{len(att['worse_recently'])} series much worse recently ({_shown_series(w)}: MASE {w['recent_mase']:.3g} "
            f"over its last {w['recent_origins']} origins vs {w['earlier_mase']:.3g} before): {names(att['worse_recently'])}"
        )
    if att["level_shift"]:
        w = att["level_shift"][0]
        lines.append(
            f"{len(att['level_shift'])} series drifted from their training level (up to {w['shift_in_std']:+.1f} "
            f"training std): {names(att['level_shift'])}"
        )
    if att["gaps"]:
        lines.append(f"{len(att['gaps'])} series miss over 20% of their actuals in the window: {names(att['gaps'])}")
    return lines


def _shown_series(entry: dict[str, Any]) -> str:
    from lstmcast.errors import shown

    return f"series {shown(entry['series'], 40)}" if entry["series"] else "the series"
