"""`lstmcast train` and `lstmcast validate`: a config (and its data) → a trained run folder, or a check of both."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lstmcast.cli import contract, render
from lstmcast.cli.contract import Output
from lstmcast.cli.options import (
    ConfigArg,
    JsonOpt,
    LogOpt,
    ProfileOpt,
    QueryOpt,
    QuietOpt,
    SetOpt,
    TrackOpt,
    TrackRequiredOpt,
    VerboseOpt,
    WaitOpt,
    load,
)
from lstmcast.learn import distributed

TRAIN_FILES = ("model.pt", "config.yaml", "metrics.json", "history.csv", "train.log")


# train's own options
TrainDataOpt = Annotated[
    str | None, typer.Option(help="CSV, Parquet file or folder, or database URL to train on (overrides data.path).")
]
TrainOutOpt = Annotated[
    Path | None, typer.Option(help="Output folder (overrides output.dir); may hold {run_date:%Y-%m-%d}.")
]
InitFromOpt = Annotated[
    Path | None, typer.Option("--init-from", help="Start from this checkpoint's weights (same architecture).")
]
RefitOpt = Annotated[
    bool, typer.Option("--refit-scaler", help="With --init-from: fit the scaler on the new data instead of keeping it.")
]
NprocOpt = Annotated[
    int,
    typer.Option(min=1, help="Train with this many processes on this machine (DDP through torch's elastic launcher)."),
]


@contract.guarded
def train(
    ctx: typer.Context,
    config: ConfigArg,
    data: TrainDataOpt = None,
    query: QueryOpt = None,
    out: TrainOutOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run in the output folder.")
    ] = False,
    init_from: InitFromOpt = None,
    refit_scaler: RefitOpt = False,
    wait: WaitOpt = None,
    nproc: NprocOpt = 1,
    track: TrackOpt = None,
    track_required: TrackRequiredOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Train a model from CONFIG; write model.pt, config.yaml, metrics.json, history.csv, train.log."""
    from lstmcast.flows import tracking

    set_ = [*(set_ or []), *tracking.track_sets(track, track_required)]  # the resolved config keeps them
    cfg = load(config, set_, data, out, query)
    tracked = tracking.for_config(cfg) if contract.rank() == 0 else tracking.Tracked(None)  # rank 0 logs
    if nproc > 1 and not distributed.from_env().distributed:
        from lstmcast import cores
        from lstmcast.learn.launch import run_processes

        cores.leave()  # this process only waits; the workers count themselves
        raise typer.Exit(run_processes(nproc, _without_nproc(sys.argv[1:])))
    resume_command = _resume_command(config, cfg, data, out, set_ or [], nproc, query)

    def work(reporter: Any) -> Any:
        with reporter.timed("import"):
            from lstmcast.flows.training import TrainOptions
            from lstmcast.flows.training import train as run

        with tracked.run(reporter, f"train {config.stem}", "train") as tracker:
            options = TrainOptions(
                resume=resume, init_from=init_from, refit_scaler=refit_scaler, wait=wait,
                resume_command=resume_command, tracker=tracker,
            )  # fmt: skip
            return run(cfg, reporter, options)

    contract.run(
        ctx,
        Output(quiet, verbose, profile, log_file, json_output),
        work,
        lambda session, outcome: session.stdout(f"checkpoint written to {outcome.checkpoint}"),
        lambda outcome: {
            "outputs": {name: str(outcome.out_dir / name) for name in TRAIN_FILES},
            "metrics": outcome.metrics,
        },
    )


@contract.guarded
def validate(
    ctx: typer.Context,
    config: ConfigArg,
    data: Annotated[
        str | None, typer.Option(help="CSV, Parquet file or folder, or database URL to check (overrides data.path).")
    ] = None,
    query: QueryOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Check CONFIG and its data as train would, without training."""
    cfg = load(config, set_, data, query=query)

    def work(reporter: Any) -> dict[str, Any]:
        with reporter.timed("import"):
            from lstmcast.flows.prepare import validate as run

        return run(cfg, reporter)

    out = Output(quiet or json_output, False, profile, log_file, json_output)
    contract.run(ctx, out, work, render.checks, lambda summary: {"checks": summary})


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line each worker runs: this one without --nproc."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _resume_command(
    config: Path, cfg: Any, data: str | None, out: Path | None, sets: list[str], nproc: int, query: str | None = None
) -> str:
    """The command that continues this run: the config, --data, --query, --out (as rendered), --set, and --resume."""
    import shlex

    argv = ["lstmcast", "train", str(config)]
    if data is not None:
        argv += ["--data", str(cfg.data.path)]
    if query is not None:
        argv += ["--query", query]
    if out is not None:  # the folder this run used, also when --out held a {run_date} placeholder
        argv += ["--out", str(cfg.output.dir)]
    for item in sets:
        argv += ["--set", item]
    processes = max(nproc, distributed.from_env().size)
    if processes > 1:
        argv += ["--nproc", str(processes)]
    return shlex.join([*argv, "--resume"])
