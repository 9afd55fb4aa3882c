"""Guarded promotion: a retrained checkpoint replaces the one in service only when it is better.

candidate.pt + DIR/model.pt (the champion) ──backtest on the same windows──▶ both scores ──▶
candidate better by the margin? copy it over DIR/model.pt atomically, keep the old one in
DIR/history/ : keep the champion ──▶ one line appended to DIR/promotions.jsonl either way.

The windows are the candidate's held-out test part of the data (as `lstmcast evaluate` picks it),
so the candidate never trained on them; whether the champion did is said in the record. Both
models are scored as predict serves them (train.select), on exactly the same origins. Everything
happens under DIR's lock; predict, which only reads DIR/model.pt, sees the old file or the new
one, never a mix, because the swap is a rename.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmcast import lock
from lstmcast.atomic import atomic_write, ensure_dir, open_append
from lstmcast.data.sinks import model_id
from lstmcast.errors import ConfigError, DataError, shown
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.report import Reporter

CHAMPION = "model.pt"
HISTORY = "history"
RECORD = "promotions.jsonl"
SAME = ("series_id", "timestamp", "target", "features", "future_features")


def promote(
    candidate: Path,
    folder: Path,
    data: Any,
    reporter: Reporter,
    *,
    metric: str = "mase",
    margin: float = 0.0,
    keep: int = 5,
    wait: float | None = None,
) -> dict[str, Any]:
    """Backtest the candidate against DIR's champion and promote it if better by `margin` (relative)."""
    if not 0 <= margin < 1:
        raise ConfigError(f"--margin {margin:g} is not a share in [0, 1) — e.g. 0.02 asks for 2% better")
    new = checkpoint.load(candidate)  # a damaged candidate is refused before the folder is touched
    ensure_dir(folder)
    with lock.hold(folder, wait):
        champion_path = folder / CHAMPION
        record: dict[str, Any] = {
            "time": _now(),
            "candidate": {"path": str(Path(candidate).resolve()), "id": model_id(candidate)},
            "metric": metric,
            "margin": margin,
        }
        if not champion_path.exists():
            _install(candidate, folder, None, keep)
            record.update(action="promoted", reason="no champion yet", champion=None)
            record["champion_after"] = record["candidate"]["id"]
            _append(folder, record)
            return record
        old = checkpoint.load(champion_path)
        _check_compatible(new, old, candidate, champion_path)
        old_id = model_id(champion_path)
        record["champion"] = {"path": str(champion_path), "id": old_id}
        if old_id == record["candidate"]["id"]:
            record.update(action="kept", reason="the candidate is the champion already", champion_after=old_id)
            _append(folder, record)
            return record
        scores, windows = _compare(candidate, champion_path, new, old, data, metric, reporter)
        record["candidate"]["score"], record["champion"]["score"] = scores
        record["windows"] = windows
        better = scores[0] is not None and (scores[1] is None or scores[0] < scores[1] * (1 - margin))
        if better:
            _install(candidate, folder, champion_path, keep)
            record.update(action="promoted", reason=_why(scores, metric, margin, True))
        else:
            record.update(action="kept", reason=_why(scores, metric, margin, False))
        record["champion_after"] = record["candidate"]["id"] if better else old_id
        _append(folder, record)
        return record


def rollback(folder: Path, *, wait: float | None = None) -> dict[str, Any]:
    """Put back the champion that the current one replaced (kept in DIR/history/)."""
    champion_path = folder / CHAMPION
    if not champion_path.exists():
        raise DataError(f"{folder} has no {CHAMPION} — nothing to roll back")
    with lock.hold(folder, wait):
        current = model_id(champion_path)
        previous = _replaced_by(folder, current)
        if previous is None:
            raise DataError(
                f"{folder / RECORD} records no promotion that replaced another model with the current one "
                f"({current}) — nothing to roll back to"
            )
        kept = folder / HISTORY / f"{previous}.pt"
        if not kept.exists():
            raise DataError(f"{kept} is gone (history keeps the last few) — promote a checkpoint explicitly instead")
        checkpoint.load(kept)  # still a valid checkpoint
        _install(kept, folder, champion_path, keep=None)
        record = {
            "time": _now(),
            "action": "rollback",
            "reason": f"rolled back from {current} to {previous}",
            "champion": {"path": str(champion_path), "id": current},
            "champion_after": previous,
        }
        _append(folder, record)
        return record


def _replaced_by(folder: Path, current: str) -> str | None:
    """The champion a promotion of `current` replaced (the latest such promotion), if any."""
    path = folder / RECORD
    if not path.exists():
        return None
    previous = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash: skip it
        if entry.get("action") == "promoted" and entry.get("champion_after") == current and entry.get("champion"):
            previous = entry["champion"]["id"]
    return previous


def _check_compatible(new: Checkpoint, old: Checkpoint, candidate: Path, champion: Path) -> None:
    """The candidate must read the same columns, at the same frequency, and forecast the same horizon."""
    for key in SAME:
        mine, theirs = getattr(new.config.data, key), getattr(old.config.data, key)
        if mine != theirs:
            raise ConfigError(
                f"{candidate} has data.{key} = {shown(mine)} but the champion {champion} has {shown(theirs)} — "
                "a candidate must forecast the same thing; deploy it to another folder"
            )
    pairs = {
        "frequency": (new.freq, old.freq),
        "window.horizon": (new.config.window.horizon, old.config.window.horizon),
    }
    for what, (mine, theirs) in pairs.items():
        if mine != theirs:
            raise ConfigError(
                f"{candidate} has {what} {shown(mine)} but the champion {champion} has {shown(theirs)} — "
                "a candidate must forecast the same thing; deploy it to another folder"
            )


def _compare(
    candidate: Path, champion: Path, new: Checkpoint, old: Checkpoint, data: Any, metric: str, reporter: Reporter
) -> tuple[tuple[float | None, float | None], dict[str, Any]]:
    """Both models' scores (as served) on the candidate's held-out windows that both can forecast."""
    from lstmcast.flows.evaluate import evaluate_checkpoint

    source = data if data is not None else new.config.data.path
    if source is None:
        raise ConfigError(f"{candidate} names no data.path — pass --data")
    if new.config.data.split.test == 0:
        raise DataError(f"{candidate} was trained without a test part, so no windows are held out from it")
    mine = evaluate_checkpoint(candidate, source, reporter)
    theirs = evaluate_checkpoint(champion, source, reporter, at=mine.origin_times)
    if theirs.report["origins"] < mine.report["origins"]:  # the champion could not forecast some: drop them
        mine = evaluate_checkpoint(candidate, source, reporter, at=theirs.origin_times)
    scores = (_served(mine.report, metric), _served(theirs.report, metric))
    return scores, _windows(mine.report, old)


def _served(report: dict[str, Any], metric: str) -> float | None:
    overall = report["overall"]
    return overall.get("selected", overall["model"])[metric]


def _windows(report: dict[str, Any], old: Checkpoint) -> dict[str, Any]:
    first = report["first_origin"]
    seen = None
    if old.train_period is not None and old.series is None:  # one series: its training period is recorded
        seen = str(old.train_period[1]) >= str(first)
    return {
        "which": "the candidate's test part (held out from its training)",
        "origins": report["origins"],
        "series": report["series"],
        "first_origin": first,
        "last_origin": report["last_origin"],
        "champion_trained_on_them": seen,
    }


def _why(scores: tuple[float | None, float | None], metric: str, margin: float, better: bool) -> str:
    new, old = (("—" if x is None else f"{x:.4g}") for x in scores)
    need = f" (needed {100 * margin:g}% better)" if margin else ""
    if better:
        return f"candidate {metric} {new} < champion {old}{need}"
    return f"candidate {metric} {new} is not better than champion {old}{need}"


def _install(source: Path, folder: Path, champion: Path | None, keep: int | None) -> None:
    """Keep the champion in history (once), then copy `source` over DIR/model.pt by rename."""
    if champion is not None:
        history = folder / HISTORY
        kept = history / f"{model_id(champion)}.pt"
        if not kept.exists():
            atomic_write(kept, lambda f: _copy(champion, f))
        if keep is not None:
            _prune(history, keep)
    atomic_write(folder / CHAMPION, lambda f: _copy(source, f))


def _copy(source: Path, f: Any) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, f, 1 << 20)


def _prune(history: Path, keep: int) -> None:
    """At most `keep` former champions, the newest kept."""
    files = sorted(history.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def _append(folder: Path, record: dict[str, Any]) -> None:
    fd = open_append(folder / RECORD)
    try:
        os.write(fd, (json.dumps(record, default=str) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
