"""The typed configuration: frozen dataclasses built from YAML plus `--set` overrides.

Every knob is declared once with `knob(...)`: default, one-line doc, and its valid range
or choices. Validation, error messages and the config reference (docs/config.md) all read that
declaration, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast.durations import DAY, seconds
from lstmcast.errors import ConfigError, shown
from lstmcast.knobs import coerce, knob, range_text, section, show
from lstmcast.locations import absolute, is_url, refuse_secrets
from lstmcast.vocabulary import ENGINES, FALLBACKS, SELECTIONS, SHORT_HISTORY


@dataclass(frozen=True)
class SplitConfig:
    val: float = knob(
        0.15,
        "rows before the test part used for validation and early stopping: a fraction (< 1) or a count (≥ 1)",
        lo=0.0,
        hi=1e9,
    )
    test: float = knob(
        0.15, "rows at the end held out for the final test metrics: a fraction (< 1) or a count (≥ 1)", lo=0.0, hi=1e9
    )


@dataclass(frozen=True)
class DataConfig:
    """Where the series comes from and how it is cleaned and split.

    Gap filling is bounded because every filled row is made up. `max_gap` defaults to 168 rows: a
    week of hourly data (seven daily cycles), and the default window.lookback, so no default window
    is made up from end to end; a mistyped year in hourly data (8,784 rows) or a dead sensor for a
    month is far beyond it, while an outage of hours or days is filled as before. `max_filled`
    defaults to 0.2: at least four rows in five of what the model learns from, is scored on or
    forecasts from are real; more invented than that is a problem with the file, not a gap.
    """

    path: str | None = knob(
        None,
        "CSV (.csv, .csv.gz), Parquet file or folder, or database URL (sqlite:///…, postgresql://…) to train on; "
        "a path is relative to this config file's folder (--data overrides)",
        path=True,
    )
    query: str | None = knob(None, "with a database URL in data.path: a table name or a SELECT (--query overrides)")
    timeout: str = knob(
        "10m",
        "with a database URL: the longest lstmcast waits for the database to connect (at most 10s) or to answer "
        "one statement (a lock held elsewhere, a slow view); then one error line, nothing written (90s, 10m, 1h)",
    )
    series_id: str | None = knob(None, "column naming the series in a long-format CSV; null = one series")
    timestamp: str | None = knob("timestamp", "column holding each row's time; null numbers the rows 0, 1, 2, …")
    target: list[str] = knob([], "column, or list of columns, to forecast (required)")
    features: list[str] = knob([], "extra numeric input columns, observed up to the forecast origin")
    future_features: list[str] = knob(
        [], "input columns known in advance (prices, holidays): predict needs them for the horizon's rows"
    )
    freq: str = knob("auto", "row frequency as a pandas alias (h, D, MS, 15min, …); auto infers it from the timestamps")
    missing: str = knob(
        "interpolate", "what to do with gaps and empty cells", choices=("interpolate", "ffill", "error")
    )
    max_gap: int = knob(
        168,
        "most consecutive rows gap filling may invent (missing rows, or rows with an empty target); longer is an error",
        lo=0,
        hi=1_000_000_000,
    )
    max_filled: float = knob(
        0.2,
        "largest share of a series' rows gap filling may invent (missing or empty target); more is an error",
        lo=0.0,
        hi=1.0,
    )
    start: str | None = knob(None, "first timestamp to use (inclusive); null starts at the first row")
    end: str | None = knob(None, "last timestamp to use (inclusive); null ends at the last row")
    calendar: str = knob(
        "auto",
        "time inputs as sine/cosine pairs for lookback and horizon: auto (by frequency), none, "
        "or a comma list of hour, dayofweek, dayofmonth, month",
    )
    scaling: str = knob(
        "standard",
        "per-series scaling fitted on its training rows: standard (z-score) or none",
        choices=("standard", "none"),
    )
    split: SplitConfig = section(SplitConfig, "chronological validation/test parts, per series")


@dataclass(frozen=True)
class WindowConfig:
    lookback: int = knob(168, "past steps the model sees for each forecast", lo=1, hi=1_000_000)
    horizon: int = knob(24, "future steps forecast at once", lo=1, hi=100_000)
    stride: int = knob(1, "steps between the starts of consecutive training windows", lo=1, hi=100_000)
    norm: str = knob(
        "last",
        "per-window normalisation of the targets: subtract the lookback's last value or mean, "
        "divide by its mean |value| (scale; needs data.scaling: none), or none",
        choices=("last", "mean", "scale", "none"),
    )


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int = knob(64, "LSTM hidden (and cell) state size per layer", lo=1, hi=8192)
    num_layers: int = knob(2, "stacked LSTM layers", lo=1, hi=32)
    dropout: float = knob(0.1, "dropout between LSTM layers (ignored with one layer)", lo=0.0, hi=0.95)
    patch: int = knob(
        1, "consecutive steps fed to the LSTM as one input x_t; must divide window.lookback", lo=1, hi=100_000
    )
    series_embedding: int = knob(
        0, "size of a learned per-series vector fed to the head (many series); 0 = off", lo=0, hi=1024
    )
    cell: str = knob(
        "fused",
        "fused = torch.nn.LSTM (cuDNN/oneDNN kernels); reference = the readable cell in lstmcast/model/reference.py",
        choices=("fused", "reference"),
    )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = knob(30, "maximum passes over the training windows", lo=1, hi=1_000_000)
    batch_size: int = knob(256, "windows per optimiser step", lo=1, hi=10_000_000)
    lr: float = knob(1e-3, "AdamW learning rate", lo=0.0, lo_open=True, hi=10.0)
    weight_decay: float = knob(0.0, "AdamW decoupled weight decay", lo=0.0, hi=10.0)
    loss: str = knob(
        "mse",
        "training loss on the scaled targets; quantile = pinball loss",
        choices=("mse", "mae", "huber", "quantile"),
    )
    quantiles: list[float] = knob(
        [],
        "quantiles to forecast with loss: quantile (must include 0.5); empty means 0.1, 0.5, 0.9",
        lo=0.0,
        lo_open=True,
        hi=0.999,
    )
    lr_schedule: str = knob(
        "constant",
        "learning rate over the run: constant, or cosine decay to 0 by the last epoch",
        choices=("constant", "cosine"),
    )
    patience: int = knob(
        5, "validations without improvement before stopping early; 0 never stops early", lo=0, hi=1_000_000
    )
    val_every: int = knob(0, "optimiser steps between validations; 0 validates once per epoch", lo=0, hi=100_000_000)
    grad_clip: float = knob(1.0, "clip the global gradient norm to this; 0 turns clipping off", lo=0.0, hi=1e6)
    seed: int = knob(0, "random seed for initialisation, shuffling and dropout", lo=0, hi=2**32 - 1)
    ensemble: int = knob(1, "models trained with seeds seed, seed+1, …; forecasts are their median", lo=1, hi=100)
    device: str = knob("auto", "where to train: auto picks cuda when available", choices=("auto", "cpu", "cuda"))
    precision: str = knob(
        "fp32",
        "bf16 runs the forward passes of training under bfloat16 autocast (for GPUs; weights stay fp32)",
        choices=("fp32", "bf16"),
    )
    threads: int = knob(
        0,
        "CPU threads for torch per process; 0 = a fair share of the cores among the lstmcast processes running "
        "on the machine (DDP ranks and other jobs), recounted every few seconds",
        lo=0,
        hi=1024,
    )
    batch_size_per_rank: bool = knob(
        True, "under torchrun, batch_size is per process (effective batch × processes); false splits it among them"
    )
    select: str = knob(
        "best",
        "best: after training, serve each series with the model, seasonal naive or naive, whichever validation "
        "shows significantly better (MASE; the panel's choice unless the series' own windows say otherwise); "
        "model: the model wherever it can",
        choices=SELECTIONS,
    )


@dataclass(frozen=True)
class PredictConfig:
    fallback: str = knob(
        "auto",
        "forecaster for a series the model cannot serve (shorter than window.lookback, unseen by a model with "
        "series embeddings, or a non-finite forecast): auto = the baseline that scored best on validation, "
        "seasonal_naive, naive, or error (refuse the whole run); predict --fallback overrides it",
        choices=FALLBACKS,
    )
    short_history: str = knob(
        "error",
        "a series the model trained on that arrives with fewer rows than window.lookback (or a batch where most "
        "series do) looks like a truncated extract: error refuses the run naming rows received and needed; "
        "fallback forecasts it by predict.fallback. New series may always be short; predict --short-history "
        "overrides it",
        choices=SHORT_HISTORY,
    )


@dataclass(frozen=True)
class EngineConfig:
    kind: str = knob("local", "where predict runs: local (this process) or ray (a Ray cluster)", choices=ENGINES)
    address: str | None = knob(None, "the Ray cluster to join (host:6379, ray://host:10001); null: a local Ray")
    workers: int = knob(0, "Ray workers, each holding the model; 0 = one per CPU of the cluster", lo=0, hi=10**6)
    cpus_per_worker: float = knob(1.0, "CPUs each Ray worker reserves", lo=0.0, lo_open=True, hi=1024.0)
    batch_rows: int = knob(2_000_000, "rows predict reads at a time (whole series): bounds memory", lo=1000, hi=10**10)


@dataclass(frozen=True)
class ArchiveConfig:
    url: str | None = knob(
        None,
        "database that records every forecast predict issues, for lstmcast score: a SQLAlchemy URL or a SQLite "
        "file path (relative to this config file's folder); LSTMCAST_ARCHIVE and predict --archive override it",
        path=True,
    )
    timeout: str = knob(
        "2m",
        "the longest predict and score wait for the archive to connect (at most 10s) or to answer one statement "
        "(a lock held by another run); then one error line and nothing archived (90s, 10m, 1h)",
    )


@dataclass(frozen=True)
class OutputConfig:
    dir: str = knob("runs", "folder for model.pt, config.yaml, metrics.json, history.csv, train.log", path=True)


@dataclass(frozen=True)
class TrackConfig:
    uri: str | None = knob(
        None,
        "MLflow tracking URI that train, tune and evaluate log to and promote records its decisions in (file:///…, "
        "sqlite:///…, http://…; a plain path is a file store relative to this config file's folder); null logs "
        "nothing; --track overrides; needs lstmcast[mlflow] (docs/tracking.md)",
        path=True,
    )
    experiment: str = knob("lstmcast", "MLflow experiment the runs go into")
    model: str | None = knob(None, "registered model promote sets the champion alias in; null: the --to folder's name")
    required: bool = knob(False, "a tracking store that fails is an error (exit 2), not one warning (--track-required)")


@dataclass(frozen=True)
class Config:
    data: DataConfig = section(DataConfig, "where the series comes from and how it is cleaned and split")
    window: WindowConfig = section(WindowConfig, "how the series is cut into training examples")
    model: ModelConfig = section(ModelConfig, "the stacked LSTM")
    train: TrainConfig = section(TrainConfig, "the optimisation")
    predict: PredictConfig = section(PredictConfig, "how predict serves every series")
    engine: EngineConfig = section(EngineConfig, "where predict runs: this process or a Ray cluster")
    archive: ArchiveConfig = section(ArchiveConfig, "the forecast archive (lstmcast score)")
    output: OutputConfig = section(OutputConfig, "where results are written")
    track: TrackConfig = section(TrackConfig, "MLflow experiment tracking (nothing is logged unless track.uri is set)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CALENDAR = ("hour", "dayofweek", "dayofmonth", "month")

# ---------------------------------------------------------------------------- loading


def load_config(
    path: str | Path, overrides: typing.Sequence[str] = (), values: typing.Mapping[str, Any] | None = None
) -> Config:
    """Read a YAML config, apply `section.key=value` overrides and typed `values`, validate, resolve paths.

    Paths written in the file resolve against the file's folder (cron runs from `/`);
    paths given in overrides resolve against the working directory, where they were typed.
    Database URLs are left as written.
    """
    path = Path(path)
    from lstmcast.yamlsafe import read_text

    raw = parse_yaml(read_text(path, "config file"), str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections ({', '.join(f.name for f in dataclasses.fields(Config))})"
        )
    _resolve_paths(raw, Config, absolute(path).parent)
    for item in overrides:
        apply_override(raw, item)
    for key, value in (values or {}).items():
        set_key(raw, key, value)
    cfg = config_from_dict(raw, source=str(path))
    if cfg.data.query is not None and not cfg.data.query.strip():
        raise ConfigError(f"data.query is empty in {path} — name a table or write a SELECT, or remove the key")
    refuse_secrets(cfg.data.path, "data.path")  # it would be copied into config.yaml, the checkpoint and logs
    refuse_secrets(cfg.archive.url, "archive.url")
    return cfg


def parse_yaml(text: str, source: str) -> Any:
    """YAML through the strict loader (`yamlsafe.parse`): duplicate keys, alias bombs, deep nesting refused."""
    from lstmcast.yamlsafe import parse

    return parse(text, source)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `section.key=value` (value parsed as YAML) to the raw config mapping."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {shown(item)} is not KEY=VALUE — write e.g. --set train.lr=0.001")
    try:
        value = parse_yaml(text, f"--set {key}") if text.strip() else None
    except ConfigError:
        value = text
    set_key(raw, key, value)


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in the raw mapping; a relative path value resolves against the working directory."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    spec = field_at(parts)
    if spec is not None and spec.metadata.get("path") and isinstance(value, (str, Path)) and not is_url(value):
        value = _path_value(value, key, Path.cwd())
    node[parts[-1]] = value


def field_at(parts: list[str]) -> dataclasses.Field[Any] | None:
    """The dataclass field a dotted key names, or None (validation reports unknown keys)."""
    cls: Any = Config
    spec = None
    for part in parts:
        if not dataclasses.is_dataclass(cls):
            return None
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        if part not in by_name:
            return None
        spec = by_name[part]
        cls = typing.get_type_hints(cls)[part]
    return spec


def _resolve_paths(raw: dict[str, Any], cls: type, base: Path, prefix: str = "") -> None:
    """Make the relative path knobs in a raw mapping absolute against `base`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = raw.get(f.name)
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict):
            _resolve_paths(value, hints[f.name], base, f"{prefix}{f.name}.")
        elif f.metadata.get("path") and isinstance(value, str) and not is_url(value):
            raw[f.name] = _path_value(value, prefix + f.name, base)


def _path_value(value: str | Path, key: str, base: Path) -> str:
    """A path knob made absolute against `base`; an empty one is refused (it would name `base` itself)."""
    if not str(value).strip():
        raise ConfigError(f"{key} is empty — give a path, or remove the key (null) to use the default")
    return str(absolute(base / Path(value).expanduser()))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping (YAML or a checkpoint's copy) into a `Config`."""
    cfg = _build(Config, raw, "")
    _check_cross_field(cfg, source)
    return cfg


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "the config"
        raise ConfigError(f"{where} must be a mapping of keys, got {show(raw)}")
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in by_name:
            raise ConfigError(f"unknown key {prefix}{key}{_suggest(str(key), prefix, list(by_name))}")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f"{prefix}{name}.")
        else:
            kwargs[name] = coerce(value, tp, by_name[name].metadata, f"{prefix}{name}")
    return cls(**kwargs)


def _suggest(key: str, prefix: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return f" — did you mean {prefix}{close[0]}?"
    if not prefix:
        return f" — valid sections are {', '.join(valid)}"
    # The key may exist in another section (train.lookback → window.lookback).
    for sec in dataclasses.fields(Config):
        names = [f.name for f in dataclasses.fields(typing.get_type_hints(Config)[sec.name])]
        if key in names:
            return f" — did you mean {sec.name}.{key}?"
    return f" — valid keys are {', '.join(prefix + v for v in valid)}"


def _check_cross_field(cfg: Config, source: str) -> None:
    w, m, s = cfg.window, cfg.model, cfg.data.split
    if w.lookback % m.patch:
        raise ConfigError(
            f"window.lookback ({w.lookback}) must be a multiple of model.patch ({m.patch}) — "
            f"change one of them in {source}"
        )
    if s.val < 1 and s.test < 1 and s.val + s.test >= 0.95:
        raise ConfigError(
            f"data.split.val + data.split.test = {s.val + s.test:g} leaves almost nothing to train on — keep it below 0.95"
        )
    step = re.fullmatch(r"\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*[A-Za-z]+\s*", cfg.data.freq)
    if (step and not float(step.group(1)) > 0) or cfg.data.freq.strip().startswith("-"):
        raise ConfigError(f"data.freq = {shown(cfg.data.freq)} is not a positive step — use e.g. h, 15min, D, W, MS")
    for key, value in (("data.timeout", cfg.data.timeout), ("archive.timeout", cfg.archive.timeout)):
        timeout_seconds(value, key)
    if w.norm == "scale" and cfg.data.scaling != "none":
        raise ConfigError("window.norm: scale divides by the window's mean |value| — it needs data.scaling: none")
    calendar = cfg.data.calendar.strip()
    if calendar not in ("auto", "none"):
        unknown = [c.strip() for c in calendar.split(",") if c.strip() not in CALENDAR]
        if unknown:
            raise ConfigError(
                f"data.calendar: unknown {unknown[0]!r} — use auto, none, or some of {', '.join(CALENDAR)}"
            )
    q = cfg.train.quantiles
    if q and cfg.train.loss != "quantile":
        raise ConfigError("train.quantiles is set but train.loss is not quantile — set train.loss: quantile")
    if q and (sorted(set(q)) != list(q) or 0.5 not in q):
        raise ConfigError(
            f"train.quantiles {q} must be increasing, without repeats, and include 0.5 (the point forecast) — "
            "e.g. [0.1, 0.5, 0.9]"
        )
    cols = list(cfg.data.target) + list(cfg.data.features) + list(cfg.data.future_features)
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise ConfigError(
            f"column {dup[0]!r} appears twice in data.target/features/future_features — list each column once"
        )
    named = [c for c in (*cfg.data.target, cfg.data.series_id, cfg.data.timestamp) if c == "forecaster"]
    if named:
        raise ConfigError(
            "a column named 'forecaster' cannot be a target, data.series_id or data.timestamp: the forecast file "
            "adds a 'forecaster' column — rename the column in the data"
        )
    if cfg.data.timestamp is not None and cfg.data.timestamp in cols:
        raise ConfigError(f"data.timestamp column {cfg.data.timestamp!r} cannot also be a target or feature")


# ---------------------------------------------------------------------------- reference


def reference(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, valid values, description) for every knob, in declaration order."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += reference(tp, f"{prefix}{f.name}.")
            continue
        meta = f.metadata
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        valid = " \\| ".join(meta["choices"]) if meta.get("choices") else range_text(meta).strip()
        type_name = str(tp).replace("typing.", "").replace(" | None", " or null").replace("NoneType", "null")
        type_name = tp.__name__ if isinstance(tp, type) else type_name
        rows.append((f"{prefix}{f.name}", type_name, _yaml_scalar(default), valid, meta["doc"]))
    return rows


def reference_markdown() -> str:
    """The config reference table (docs/config.md, written by docs/generate.py)."""
    lines = ["| key | type | default | valid | what it does |", "|---|---|---|---|---|"]
    lines += [f"| `{k}` | {t} | `{d}` | {v} | {doc} |" for k, t, d, v, doc in reference()]
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def to_yaml(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)


def timeout_seconds(value: str, key: str) -> float:
    """data.timeout or archive.timeout in seconds: a duration of at most a week."""
    return seconds(value, key, most=7 * DAY, units=("ms", "s", "m", "min", "h", "d"), example="90s, 10m or 1h")


def quantile_levels(train: TrainConfig) -> list[float]:
    """The quantiles the model forecasts: none for point losses."""
    if train.loss != "quantile":
        return []
    return list(train.quantiles) or [0.1, 0.5, 0.9]


if __name__ == "__main__":  # python -m lstmcast.config: print the config reference
    print(reference_markdown(), end="")
