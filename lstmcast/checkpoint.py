"""One self-contained checkpoint file: plain Python types and tensors, loaded without unpickling code.

`torch.load(..., weights_only=True)` only rebuilds dicts, lists, strings, numbers and tensors,
so a crafted file cannot run code. Writes go through `atomic_write`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from lstmcast import __version__
from lstmcast.atomic import atomic_write
from lstmcast.errors import CheckpointError

# Bump when the payload's meaning changes; `upgrade` must keep every older version loading.
FORMAT_VERSION = 1
REQUIRED = ("format_version", "lstmcast_version", "config", "model_args", "model_state", "scaler", "columns", "freq")


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format_version": FORMAT_VERSION, "lstmcast_version": __version__, **payload}
    atomic_write(path, lambda f: torch.save(payload, f))


def load(path: str | Path) -> dict[str, Any]:
    """A trained model's checkpoint, checked for format version and required keys."""
    path = Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or "format_version" not in payload or payload.get("kind") == "resume":
        raise CheckpointError(
            f"{path} is a torch file but not an lstmcast checkpoint — give a model.pt written by lstmcast train"
        )
    _check_version(path, payload)
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)} — it is damaged; retrain or restore it")
    return payload


def save_state(path: Path, payload: dict[str, Any]) -> None:
    """A resumable training state (written each epoch and on SIGINT/SIGTERM)."""
    save(path, {"kind": "resume", **payload})


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no resumable state at {path} — the last run finished or never started; train without --resume"
        )
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("kind") != "resume":
        raise CheckpointError(f"{path} is not an lstmcast resume state — delete it and train without --resume")
    _check_version(path, payload)
    return payload


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found — train one with `lstmcast train CONFIG`")
    if path.is_dir():
        hint = " (did you mean model.pt inside it?)" if (path / "model.pt").exists() else ""
        raise CheckpointError(f"checkpoint path {path} is a folder{hint} — give the model.pt file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version} (written by lstmcast {payload.get('lstmcast_version', '?')}); "
            f"this lstmcast {__version__} reads formats up to {FORMAT_VERSION} — upgrade lstmcast"
        )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
