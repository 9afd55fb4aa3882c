"""`lstmcast inspect`: a checkpoint's card and, with data, what its forget/input/output gates do on that data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmcast.data import sources
from lstmcast.errors import DataError
from lstmcast.forecast import partition, serve
from lstmcast.forecast.metrics import METRICS
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.model.lstm import Ensemble, Forecaster, parameter_count
from lstmcast.model.selection import mean as selection_mean
from lstmcast.report import Reporter


def inspect_checkpoint(ckpt_path: Path, data_path: Path | None, reporter: Reporter) -> dict[str, Any]:
    """The checkpoint's card and, with data, what its gates do on that data's windows."""
    ckpt = checkpoint.load(ckpt_path)
    model = ckpt.forecaster()
    spec, cfg, m = model.spec, ckpt.config, ckpt.metrics
    card: dict[str, Any] = {
        "file": str(ckpt_path),
        "lstmcast version": ckpt.lstmcast_version,
        "format version": ckpt.format_version,
        "created": ckpt.created_at or "?",
        "model": f"{spec.num_layers} × {spec.hidden_size} LSTM ({spec.cell} cell), "
        f"patch {spec.patch}, window norm {spec.norm}, dropout {spec.dropout}",
        "parameters": f"{parameter_count(model):,}",
        "window": f"lookback {spec.lookback}, horizon {spec.horizon}, stride {cfg.window.stride}",
        "train": f"loss {cfg.train.loss}, lr {cfg.train.lr}, batch {cfg.train.batch_size}, "
        f"epochs {m.get('epochs_run', '?')} of {cfg.train.epochs} (best {m.get('best_epoch', '?')}), "
        f"{m.get('train_seconds', '?')} s",
        "targets": ", ".join(ckpt.targets),
        "features": ", ".join(cfg.data.features) or "none",
        "frequency": ckpt.freq or "steps",
        "times": _clock(ckpt),
        "training period": " … ".join(map(str, ckpt.train_period or ["?"])),
        "data period": " … ".join(map(str, ckpt.data_period or ["?"])),
        "series": 1 if ckpt.series is None else len(ckpt.series),
    }
    if ckpt.selection is not None:
        sel, mode = ckpt.selection, cfg.train.select
        mix = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in sel.mix(mode).items())
        mase = ", ".join(
            f"{name.replace('_', ' ')} {selection_mean(v) or float('nan'):.4g}" for name, v in sel.scores.items()
        )
        card["served by"] = f"{mix} series (train.select: {mode}; validation MASE {mase}); new series: " + sel.overall(
            mode
        ).replace("_", " ")
    card["fallback"] = f"{cfg.predict.fallback} ({serve.fallback_for(ckpt, cfg.predict.fallback).replace('_', ' ')})"
    for key in ("mae", "rmse"):
        if m.get(f"test_{key}") is not None:
            naive = m.get("seasonal_naive", {}).get(f"test_{key}", float("nan"))
            card[f"test {METRICS[key].label}"] = f"{m[f'test_{key}']:.4g} (seasonal naive {naive:.4g})"
    report: dict[str, Any] = {"card": card}
    if data_path is not None:
        report["gates"] = _gate_report(ckpt, model, data_path, reporter)
    return report


def _clock(ckpt: Checkpoint) -> str:
    """The zone the training times were in, which predict holds data to (calendar features read that clock)."""
    zone = {None: "not recorded" if ckpt.freq else "numbered steps", "": "without a UTC offset"}
    told = zone.get(ckpt.time_zone, f"in {ckpt.time_zone}")
    return told + ("" if ckpt.calendar else " (no calendar features: any clock serves)")


def _gate_report(ckpt: Checkpoint, model: Forecaster, data_path: Path, reporter: Reporter) -> list[dict[str, float]]:
    """Forget/input/output gate statistics per layer over up to 1,024 windows of the data."""
    from lstmcast.model.reference import gate_summary

    spec = model.spec
    window = spec.lookback + spec.horizon
    source = sources.within(data_path, ckpt.config.data)  # a database waits at most data.timeout
    panel = partition.read_like_training(ckpt, source, reporter)
    panel = panel.take(np.flatnonzero(panel.lengths >= window))
    if not len(panel):
        raise DataError(f"{data_path}: no series has {window} rows (lookback + horizon) — supply more")
    ds = partition.dataset_for(ckpt, model.spec, panel, reporter)
    valid = np.concatenate([np.arange(ds.offsets[i], ds.offsets[i + 1] - window + 1) for i in range(len(ds.ids))])
    starts = valid[np.unique(np.linspace(0, len(valid) - 1, num=min(1024, len(valid))).astype(int))]
    reference = ckpt.forecaster(cell="reference")
    first = reference.first if isinstance(reference, Ensemble) else reference
    with torch.no_grad():
        x = ds.data.take(torch.as_tensor(starts))[0][0]
        steps, _ = first.lstm_inputs(x)
        _, _, gates = first.lstm(steps, record_gates=True)
    layers = gate_summary(gates)
    for layer in layers:
        layer["memory_steps"] = layer["memory_length"] * spec.patch  # LSTM steps → rows of the series
        layer["memory_longest_steps"] = layer["memory_longest"] * spec.patch
    return layers
