"""The checkpoint as one typed object, stored as plain data and loaded without unpickling code.

`torch.load(..., weights_only=True)` only rebuilds dicts, lists, strings, numbers and tensors,
so a crafted file cannot run code. Every reader goes through `load` → `Checkpoint`: older
formats pass through the `upgrade` chain first, so a change of format or of the config's
rules has one place to go. Writes go through `atomic_write`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstmcast import __version__
from lstmcast.atomic import atomic_write
from lstmcast.config import Config, config_from_dict
from lstmcast.errors import CheckpointError, LstmcastError
from lstmcast.learn.scaling import Scaler
from lstmcast.model.lstm import Dims, Ensemble, Forecaster, ModelSpec, StackedLSTM, expected_shapes, spec_for
from lstmcast.model.selection import Selection
from lstmcast.vocabulary import FORECASTERS

# Bump when the stored payload changes, and add the step from the previous version to UPGRADES.
FORMAT_VERSION = 4
Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Checkpoint:
    """A trained model and everything predict, evaluate and inspect need to use it."""

    config: Config  # as trained; data.freq holds the frequency actually used
    dims: Dims
    members: list[Weights]  # one state dict per ensemble member (one without an ensemble)
    scaler: Scaler
    calendar: list[str]
    series: list[str] | None  # training series in embedding order; None for one unnamed series
    train_period: list[str] | None = None  # first and last training time (single series)
    data_period: list[str] | None = None
    test_start: str | None = None  # where evaluate's default period starts (single series)
    time_zone: str | None = None  # the training times' zone: '' without offsets; None: no times, or before v4
    metrics: dict[str, Any] = field(default_factory=dict)
    selection: Selection | None = None  # validation scores per series (None: written before v3, or no validation)
    created_at: str = ""
    lstmcast_version: str = __version__
    format_version: int = FORMAT_VERSION  # the version the file was written in (before any upgrade)

    def spec(self, cell: str | None = None) -> ModelSpec:
        return spec_for(self.config, self.dims, cell)

    def forecaster(self, cell: str | None = None) -> Forecaster:
        """The model, in eval mode, optionally with the other cell (fused ↔ reference: same weights).

        `check` has compared every tensor's shape with the spec, so loading cannot fail.
        """
        spec = self.spec(cell)
        members = []
        for weights in self.members:
            model = StackedLSTM(spec)
            model.load_state_dict(weights)
            members.append(model)
        return (members[0] if len(members) == 1 else Ensemble(members)).eval()

    @property
    def freq(self) -> str | None:
        """The data's frequency, None for rows numbered by step."""
        return self.config.data.freq if self.config.data.timestamp is not None else None

    @property
    def targets(self) -> list[str]:
        return list(self.config.data.target)

    def to_dict(self) -> dict[str, Any]:
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {
            **payload,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "dims": dataclasses.asdict(self.dims),
            "scaler": self.scaler.to_dict(),
            "selection": None if self.selection is None else self.selection.to_dict(),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any], source: Path) -> Checkpoint:
        """A checkpoint of the current format from a payload of any known version."""
        written = payload["format_version"]
        payload = upgrade(payload, written)
        try:
            ckpt = cls(
                config=config_from_dict(payload["config"], source=str(source)),
                dims=Dims(**payload["dims"]),
                members=list(payload["members"]),
                scaler=Scaler.from_dict(payload["scaler"]),
                calendar=list(payload["calendar"]),
                series=None if payload["series"] is None else [str(s) for s in payload["series"]],
                train_period=payload.get("train_period"),
                data_period=payload.get("data_period"),
                test_start=payload.get("test_start"),
                time_zone=payload["time_zone"],
                metrics=dict(payload.get("metrics") or {}),
                selection=None if payload["selection"] is None else Selection.from_dict(payload["selection"]),
                created_at=str(payload.get("created_at", "")),
                lstmcast_version=str(payload.get("lstmcast_version", "?")),
                format_version=written,
            )
        except LstmcastError as exc:
            raise CheckpointError(f"{source}: its stored config is not valid ({exc}) — retrain the model") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise CheckpointError(
                f"{source}: a field is missing or malformed ({_reason(exc)}) — it is damaged"
            ) from None
        ckpt.check(source)
        return ckpt

    def check(self, source: Path) -> None:
        """Every field agrees with the others, before any model is allocated."""
        spec = self.spec()
        if not self.members:
            raise CheckpointError(f"{source} holds no weights — it is damaged; retrain or restore it")
        if self.scaler.columns != spec.n_inputs - spec.n_future + len(self.config.data.future_features):
            raise CheckpointError(f"{source}: the scaler does not fit the model's inputs — it is damaged")
        cal = spec.n_future - len(self.config.data.future_features)
        if spec.n_targets != len(self.targets) or cal != 2 * len(self.calendar):
            raise CheckpointError(f"{source}: its dimensions do not fit its columns and calendar — it is damaged")
        if self.series is not None and self.scaler.ids != self.series:
            raise CheckpointError(f"{source}: the scaler's series differ from the model's — it is damaged")
        if self.selection is not None:
            self._check_selection(source)
        shapes = expected_shapes(spec)
        for k, weights in enumerate(self.members):
            got = {name: tuple(t.shape) for name, t in weights.items() if isinstance(t, torch.Tensor)}
            if got != shapes or len(got) != len(weights):
                wrong = sorted(set(got.items()) ^ set(shapes.items()))[:1]
                raise CheckpointError(
                    f"{source}: weights of member {k + 1} do not fit the model it describes "
                    f"({wrong[0][0] if wrong else 'non-tensor entry'}) — it is damaged; retrain or restore it"
                )
            bad = [name for name, t in weights.items() if not torch.isfinite(t).all()]
            if bad:
                raise CheckpointError(
                    f"{source}: weights of member {k + 1} hold NaN or infinite values ({bad[0]}) — "
                    "it is damaged; retrain or restore it"
                )

    def _check_selection(self, source: Path) -> None:
        sel = self.selection
        assert sel is not None
        spread_ok = all(name in FORECASTERS and len(q) == self.config.window.horizon for name, q in sel.spread.items())
        if sel.ids != self.scaler.ids or not spread_ok:
            raise CheckpointError(f"{source}: its forecaster selection does not fit its series — it is damaged")


# ---------------------------------------------------------------------------- format upgrades


def _v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
    """v1 stored model_args and columns beside the config, a flat scaler for one series, and split weights."""
    args, config = p["model_args"], _deep_copy(p["config"])
    window, model, train = (config.setdefault(k, {}) for k in ("window", "model", "train"))
    for key in ("lookback", "horizon", "norm"):
        if key in args:
            window[key] = args[key]
    for key in ("hidden_size", "num_layers", "dropout", "patch", "cell", "series_embedding"):
        if key in args:
            model[key] = args[key]
    if args.get("quantiles"):
        train.update(loss="quantile", quantiles=list(args["quantiles"]))
    scaler = dict(p["scaler"])
    if "ids" not in scaler:
        scaler = {"kind": scaler["kind"], "ids": [None], "mean": [scaler["mean"]], "std": [scaler["std"]]}
    keep = {k: v for k, v in p.items() if k not in ("model_args", "columns", "freq", "model_state", "ensemble_states")}
    return {
        **keep,
        "config": config,
        "dims": {k: args.get(k, 0) for k in ("n_inputs", "n_targets", "n_future", "n_series")},
        "members": [p["model_state"], *p.get("ensemble_states", [])],
        "scaler": scaler,
        "calendar": p.get("calendar", []),
        "series": p.get("series"),
        "format_version": 2,
    }


def _v2_to_v3(p: dict[str, Any]) -> dict[str, Any]:
    """v3 adds the per-series selection; a model trained before it serves every series itself (select: model)."""
    config = _deep_copy(p["config"])
    config.setdefault("train", {})["select"] = "model"
    return {**p, "config": config, "selection": None, "format_version": 3}


def _v3_to_v4(p: dict[str, Any]) -> dict[str, Any]:
    """v4 records the training times' zone, so predict can refuse times on another clock; before: unknown."""
    return {**p, "time_zone": None, "format_version": 4}


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


def upgrade(payload: dict[str, Any], from_version: int) -> dict[str, Any]:
    """Apply each step from `from_version` up to FORMAT_VERSION."""
    for version in range(from_version, FORMAT_VERSION):
        payload = UPGRADES[version](payload)
    return payload


def _deep_copy(tree: Any) -> Any:
    return {k: _deep_copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


# ---------------------------------------------------------------------------- files


def save(path: Path, ckpt: Checkpoint) -> None:
    payload = ckpt.to_dict()
    atomic_write(path, lambda f: torch.save(payload, f))


def load(path: str | Path) -> Checkpoint:
    """A trained model's checkpoint, of any format this version reads."""
    return load_with_id(path)[0]


def load_with_id(path: str | Path) -> tuple[Checkpoint, str]:
    """The checkpoint and the model id of exactly the bytes it was read from (`sinks.model_id`'s hash).

    The file is read once: a file replaced meanwhile (a promote's swap) cannot give the model of one
    file and the id of another."""
    path = Path(path)
    data = read_bytes(path)
    return from_bytes(data, path), bytes_id(data)


def from_bytes(data: bytes, path: Path) -> Checkpoint:
    """The checkpoint in `data` (read from `path`, which messages name)."""
    payload = _read(path, data)
    if not isinstance(payload, dict) or "format_version" not in payload or payload.get("kind") == "resume":
        raise CheckpointError(
            f"{path} is a torch file but not an lstmcast checkpoint — give a model.pt written by lstmcast train"
        )
    _check_version(path, payload)
    return Checkpoint.from_dict(payload, path)


def bytes_id(data: bytes) -> str:
    """A checkpoint's identity in forecast tables and the archive: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def read_bytes(path: Path) -> bytes:
    """A checkpoint file's bytes, read through one open descriptor; anything but a regular file is refused
    (a FIFO would block the read forever, a device would read without end)."""
    if not path.exists():
        if path.is_symlink():
            raise CheckpointError(
                f"checkpoint {path} is a symbolic link that loops or whose target is gone — point it at a model.pt"
            )
        raise CheckpointError(f"checkpoint {path} not found — train one with `lstmcast train CONFIG`")
    if path.is_dir():
        hint = " (did you mean model.pt inside it?)" if (path / "model.pt").exists() else ""
        raise CheckpointError(f"checkpoint path {path} is a folder{hint} — give the model.pt file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CheckpointError(
                f"checkpoint path {path} is not a regular file (a FIFO or device?) — give the model.pt file"
            )
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc} — check the file") from None


@dataclass
class RunState:
    """What `train --resume` needs: the run's identity, finished members and the trainer's state."""

    config: dict[str, Any]
    scaler: Scaler
    fingerprint: str
    members: list[Weights] = field(default_factory=list)  # finished ensemble members
    results: list[dict[str, Any]] = field(default_factory=list)  # their FitResults as plain data
    trainer: dict[str, Any] | None = None  # the member in progress (None between members)


def save_state(path: Path, state: RunState) -> None:
    """A resumable training state (written each epoch and on SIGINT/SIGTERM)."""
    payload = {
        "kind": "resume",
        "format_version": FORMAT_VERSION,
        "lstmcast_version": __version__,
        **dataclasses.asdict(state),
        "scaler": state.scaler.to_dict(),
    }
    atomic_write(path, lambda f: torch.save(payload, f))


def load_state(path: Path) -> RunState:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no resumable state at {path} — the last run finished or never started; train without --resume"
        )
    payload = _read(path, read_bytes(path))
    if not isinstance(payload, dict) or payload.get("kind") != "resume":
        raise CheckpointError(f"{path} is not an lstmcast resume state — delete it and train without --resume")
    _check_version(path, payload)
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by another lstmcast version — train without --resume")
    try:
        fields = {f.name: payload[f.name] for f in dataclasses.fields(RunState)}
        return RunState(**{**fields, "scaler": Scaler.from_dict(payload["scaler"])})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged ({_reason(exc)}) — delete it and train without --resume") from None


def _read(path: Path, data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a safe lstmcast checkpoint (it holds objects other than plain data: "
            f"{str(exc).splitlines()[0][:120]}) — lstmcast never executes code from a checkpoint"
        ) from None
    except Exception as exc:  # any failure to decode an untrusted file means it is not a usable checkpoint
        raise CheckpointError(
            f"{path} is not a readable lstmcast checkpoint ({_reason(exc)}) — it may be truncated or another kind of file"
        ) from None


def _check_version(path: Path, payload: dict[str, Any]) -> None:
    version = payload["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {str(version)[:20]} (written by lstmcast "
            f"{str(payload.get('lstmcast_version', '?'))[:20]}); this lstmcast {__version__} reads formats 1 to "
            f"{FORMAT_VERSION} — upgrade lstmcast"
        )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
