"""Guarded promotion: a retrained checkpoint replaces the one in service only when it is better.

candidate.pt + DIR/model.pt (the champion) ──backtest on the same windows──▶ both scores ──▶
candidate better by the margin? keep the old champion in DIR/history/, record the decision, then
write the candidate over DIR/model.pt atomically : keep the champion ──▶ one line in
DIR/promotions.jsonl either way.

The windows are the candidate's held-out test part of the data (as `lstmcast evaluate` picks it),
so the candidate never trained on them; whether the champion did is said in the record. Both
models are scored as predict serves them (train.select), on exactly the same origins. Everything
happens under DIR's lock; predict, which only reads DIR/model.pt, sees the old file or the new
one, never a mix, because the swap is a rename.

The record comes first: a decision that cannot be recorded (promotions.jsonl read-only, a folder,
a FIFO, a full disk) swaps nothing. The candidate's bytes are read once: those are validated,
hashed (the id the record names), evaluated (from a private copy in DIR) and installed, so a
candidate file replaced meanwhile is never installed unevaluated. History is pruned by the order
of the records (not file ages), and the model a rollback of the new champion needs is always kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmcast import lock
from lstmcast.atomic import atomic_write, ensure_dir, kind_of, open_append, write_target
from lstmcast.data.sinks import model_id
from lstmcast.errors import ConfigError, DataError, OutputError, shown
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint
from lstmcast.report import Reporter, to_json

CHAMPION = "model.pt"
HISTORY = "history"
RECORD = "promotions.jsonl"
STAGED = ".candidate.pt"  # the candidate's bytes, as read once, while they are evaluated
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
    payload = checkpoint.read_bytes(Path(candidate))  # read once: these bytes are checked, scored and installed
    new = checkpoint.from_bytes(payload, Path(candidate))  # a damaged candidate is refused before DIR is touched
    ensure_dir(folder)
    with lock.hold(folder, wait):
        champion_path = folder / CHAMPION
        _writable(folder)  # a record or champion that could not be written: refused before the backtests
        record: dict[str, Any] = {
            "time": _now(),
            "candidate": {"path": str(Path(candidate).resolve()), "id": checkpoint.bytes_id(payload)},
            "metric": metric,
            "margin": margin,
        }
        if not champion_path.exists():
            record.update(action="promoted", reason="no champion yet", champion=None)
            record["champion_after"] = record["candidate"]["id"]
            _swap(folder, record, payload, keep)
            return record
        old, old_id = checkpoint.load_with_id(champion_path)
        _check_compatible(new, old, candidate, champion_path)
        record["champion"] = {"path": str(champion_path), "id": old_id}
        if old_id == record["candidate"]["id"]:
            record.update(action="kept", reason="the candidate is the champion already", champion_after=old_id)
            _append(folder, record)
            return record
        with _staged(folder, payload) as staged:
            scores, windows = _compare(staged, champion_path, new, old, data, metric, reporter, candidate)
        record["candidate"]["score"], record["champion"]["score"] = scores
        record["windows"] = windows
        better = scores[0] is not None and (scores[1] is None or scores[0] < scores[1] * (1 - margin))
        record.update(action="promoted" if better else "kept", reason=_why(scores, metric, margin, better))
        record["champion_after"] = record["candidate"]["id"] if better else old_id
        if better:
            _swap(folder, record, payload, keep)
        else:
            _append(folder, record)
        return record


def rollback(folder: Path, *, wait: float | None = None) -> dict[str, Any]:
    """Put back the champion that the current one replaced (kept in DIR/history/)."""
    champion_path = folder / CHAMPION
    if not champion_path.exists():
        raise DataError(f"{folder} has no {CHAMPION} — nothing to roll back")
    with lock.hold(folder, wait):
        _writable(folder)
        current = model_id(champion_path)
        records = _records(folder, strict=True)
        previous = _replaced_by(records, current)
        if previous is None:
            raise DataError(
                f"{folder / RECORD} records no promotion that replaced another model with the current one "
                f"({current}) — nothing to roll back to"
            )
        kept = folder / HISTORY / f"{previous}.pt"
        if not kept.exists():
            raise DataError(f"{kept} is gone (history keeps the last few) — promote a checkpoint explicitly instead")
        payload = checkpoint.read_bytes(kept)
        checkpoint.from_bytes(payload, kept)  # still a valid checkpoint …
        if checkpoint.bytes_id(payload) != previous:  # … and the one its name says
            raise DataError(f"{kept} does not hold model {previous} (it was changed) — promote a checkpoint instead")
        record = {
            "time": _now(),
            "action": "rollback",
            "reason": f"rolled back from {current} to {previous}",
            "champion": {"path": str(champion_path), "id": current},
            "champion_after": previous,
        }
        _swap(folder, record, payload, keep=None)
        return record


def _writable(folder: Path) -> None:
    """DIR/promotions.jsonl and DIR/model.pt are regular files lstmcast may write, or absent (the output rules)."""
    for path in (folder / RECORD, folder / CHAMPION):
        write_target(path)


def _swap(folder: Path, record: dict[str, Any], payload: bytes, keep: int | None) -> None:
    """Keep the champion in history, record the decision, then write `payload` over DIR/model.pt (by rename).

    Everything that could refuse is checked first (the record opened for appending, DIR/model.pt writable), so a
    decision that cannot be recorded changes nothing; the record is written before the swap. If the swap itself
    then fails (a disk filling up at that moment), a second line says so (when it can) and the run exits 2."""
    champion_path = folder / CHAMPION
    replaced = record.get("champion")
    write_target(champion_path)  # read-only, a folder, a device: refused before anything is written
    fd = open_append(folder / RECORD, "the promotion record")
    try:
        if replaced:
            kept = folder / HISTORY / f"{replaced['id']}.pt"
            if not kept.exists():
                atomic_write(kept, lambda f: _copy(champion_path, f))
        _write_line(fd, folder, record)
    finally:
        os.close(fd)
    try:
        atomic_write(champion_path, lambda f: f.write(payload))
    except OutputError as exc:
        failed = {"time": _now(), "action": "failed", "reason": f"the swap failed: {exc}"}
        with contextlib.suppress(OutputError, OSError):
            _append(folder, {**failed, "champion_after": replaced["id"] if replaced else None})
        raise OutputError(f"{exc} — {champion_path} was not replaced (promotions.jsonl says so)") from None
    if keep is not None:
        _prune(folder, keep, record["champion_after"])


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
    staged: Path,
    champion: Path,
    new: Checkpoint,
    old: Checkpoint,
    data: Any,
    metric: str,
    reporter: Reporter,
    candidate: Path,
) -> tuple[tuple[float | None, float | None], dict[str, Any]]:
    """Both models' scores (as served) on the candidate's held-out windows that both can forecast; the candidate
    is evaluated from `staged`, the copy of the bytes promote read (and would install)."""
    from lstmcast.flows.evaluate import evaluate_checkpoint

    source = data if data is not None else new.config.data.path
    if source is None:
        raise ConfigError(f"{candidate} names no data.path — pass --data")
    if new.config.data.split.test == 0:
        raise DataError(f"{candidate} was trained without a test part, so no windows are held out from it")
    mine = evaluate_checkpoint(staged, source, reporter)
    theirs = evaluate_checkpoint(champion, source, reporter, at=mine.origin_times)
    if theirs.report["origins"] < mine.report["origins"]:  # the champion could not forecast some: drop them
        mine = evaluate_checkpoint(staged, source, reporter, at=theirs.origin_times)
    scores = (_served(mine.report, metric), _served(theirs.report, metric))
    return scores, _windows(mine.report, old)


@contextlib.contextmanager
def _staged(folder: Path, payload: bytes) -> Iterator[Path]:
    """The candidate's bytes as a private file in DIR while they are evaluated; removed afterwards."""
    staged = folder / STAGED
    atomic_write(staged, lambda f: f.write(payload))
    try:
        yield staged
    finally:
        staged.unlink(missing_ok=True)


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
    """Keep the champion in history (once), then write `source`'s bytes over DIR/model.pt by rename (no record)."""
    payload = checkpoint.read_bytes(Path(source))
    if champion is not None:
        kept = folder / HISTORY / f"{model_id(champion)}.pt"
        if not kept.exists():
            atomic_write(kept, lambda f: _copy(champion, f))
    atomic_write(folder / CHAMPION, lambda f: f.write(payload))
    if keep is not None:
        _prune(folder, keep, checkpoint.bytes_id(payload))


def _copy(source: Path, f: Any) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, f, 1 << 20)


def _records(folder: Path, *, strict: bool) -> list[dict[str, Any]]:
    """The decisions in DIR/promotions.jsonl, in order. A line that is not a record (cut by a crash, edited,
    not UTF-8, not a JSON object of the shape lstmcast writes): skipped, or with `strict` (a rollback) one error
    line saying which lines were read and which were not."""
    path = folder / RECORD
    if not path.exists():
        return []
    data = _read_regular(path)
    records, bad = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        entry = _entry(line)
        if entry is None:
            bad.append(number)
        else:
            records.append(entry)
    if strict and bad:
        lines = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(
            f"{path}: line {lines} cannot be read (not a record lstmcast wrote); {len(records)} other records were "
            "read — a rollback needs the whole history: repair or delete those lines (one cut by a crash can be "
            "deleted), then roll back again"
        )
    return records


def _read_regular(path: Path) -> bytes:
    """The record's bytes; a FIFO, device or folder there is one error line (a FIFO would block the read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"cannot read the promotion record {path}: {exc.strerror or exc}") from None
    kind = kind_of(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise DataError(f"the promotion record {path} is {kind}, not a regular file — move it away")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("action"), str):
        return None
    replaced = entry.get("champion")
    if replaced is not None and not (isinstance(replaced, dict) and isinstance(replaced.get("id"), str)):
        return None
    if not isinstance(entry.get("champion_after"), str | None):
        return None
    return entry


def _replaced_by(records: list[dict[str, Any]], current: str) -> str | None:
    """The champion the latest promotion of `current` replaced, if any: what a rollback puts back."""
    previous = None
    for entry in records:
        if entry["action"] == "promoted" and entry.get("champion_after") == current and entry.get("champion"):
            previous = entry["champion"]["id"]
    return previous


def _prune(folder: Path, keep: int, champion: str) -> None:
    """At most `keep` former champions, the most recently replaced kept (by the records' order, not file ages;
    files the records do not name count as older, by age), and always the one a rollback of `champion` needs."""
    history = folder / HISTORY
    records = _records(folder, strict=False)
    order: list[str] = []
    for entry in records:
        if entry["action"] in ("promoted", "rollback") and entry.get("champion"):
            replaced = entry["champion"]["id"]
            order = [i for i in order if i != replaced] + [replaced]
    files = {p.stem: p for p in history.glob("*.pt")}
    unnamed = sorted((i for i in files if i not in order), key=lambda i: files[i].stat().st_mtime)
    ranked = [*unnamed, *[i for i in order if i in files]]
    needed = _replaced_by(records, champion)
    for stale in ranked[: max(0, len(ranked) - keep)]:
        if stale != needed and stale != champion:
            files[stale].unlink(missing_ok=True)


def _append(folder: Path, record: dict[str, Any]) -> None:
    """One line of DIR/promotions.jsonl, fsynced: a regular file (not read-only, a folder, a FIFO) or none yet."""
    fd = open_append(folder / RECORD, "the promotion record")
    try:
        _write_line(fd, folder, record)
    finally:
        os.close(fd)


def _write_line(fd: int, folder: Path, record: dict[str, Any]) -> None:
    try:
        os.write(fd, (to_json(record) + "\n").encode())
        os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"cannot write the promotion record {folder / RECORD}: {exc.strerror or exc}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
