"""Long memory: a 2-layer LSTM against a plain tanh RNN of the same size on a delayed-event forecasting task.

Each sequence is T = L + MARGIN steps of small gaussian noise (σ = NOISE) with one spike of random sign and size
(uniform on ±AMPLITUDE) k steps before the end. The value to forecast at the last step is the spike's amplitude:
a model has to notice the spike and carry it across k steps of distractor noise. Training draws k log-uniformly
from 1..L (the short delays give both models a learning signal from the first step); the test puts every spike
exactly L steps back, at index T - L.

For each L both models (LSTM + linear head, RNN + linear head, ~equal parameter counts) get the same seed, the
same batches, optimiser (AdamW, one-cycle schedule, gradient clipping), number of steps and batch size. We report
test MSE, the MSE of forecasting 0 (the scale), and the vanishing-gradient curve: the norm of ∂loss/∂x at
position T - k for k = 1..L on the test spikes, at initialisation and after training.

    python benchmarks/long_memory.py            # full run, ~5 min on one core
    python benchmarks/long_memory.py --quick    # smoke run, < 1 min
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from lstmcast.model.reference import ReferenceLSTM, gate_summary, memory_lengths

MARGIN = 10  # noise steps before the spike, so that it never sits at t = 0
NOISE = 0.1  # σ of the distractor noise
AMPLITUDE = 2.0  # the spike is uniform on [-AMPLITUDE, AMPLITUDE]
LSTM_HIDDEN = 16
LAYERS = 2
REPORT_K = (1, 10, 25, 50, 100, 200)


def make_batch(n: int, length: int, gen: torch.Generator, exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, L + MARGIN, 1) and the target y (n, 1): the amplitude of the spike at T - k.

    k is L when `exact` (the test), else log-uniform on 1..L (training): as many spikes 1-10 steps back as 10-100,
    so both models get a learning signal from the first step and a curriculum towards the long delays.
    """
    steps = length + MARGIN
    x = NOISE * torch.randn(n, steps, 1, generator=gen)
    y = AMPLITUDE * (2 * torch.rand(n, generator=gen) - 1)
    if exact:
        k = torch.full((n,), length)
    else:
        k = torch.pow(length + 1.0, torch.rand(n, generator=gen)).long().clamp(1, length)
    x[torch.arange(n), steps - k, 0] += y
    return x, y[:, None]


class Forecaster(nn.Module):
    """A recurrent stack read at the last step by a linear head — the shape of lstmcast's StackedLSTM."""

    def __init__(self, rnn: nn.Module, hidden: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rnn_params(hidden: int) -> int:
    return n_params(Forecaster(nn.RNN(1, hidden, LAYERS, batch_first=True), hidden))


def build(kind: str, seed: int) -> Forecaster:
    torch.manual_seed(seed)
    if kind == "lstm":
        lstm = nn.LSTM(1, LSTM_HIDDEN, LAYERS, batch_first=True)
        # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015), as lstmcast's StackedLSTM does; i, f, g, o.
        with torch.no_grad():
            for k in range(LAYERS):
                getattr(lstm, f"bias_ih_l{k}")[LSTM_HIDDEN : 2 * LSTM_HIDDEN] = 1.0
                getattr(lstm, f"bias_hh_l{k}")[LSTM_HIDDEN : 2 * LSTM_HIDDEN] = 0.0
        return Forecaster(lstm, LSTM_HIDDEN)
    # The RNN width whose parameter count is closest to the LSTM's.
    target = n_params(build("lstm", seed))
    hidden = min(range(4, 8 * LSTM_HIDDEN), key=lambda h: abs(rnn_params(h) - target))
    torch.manual_seed(seed)
    return Forecaster(nn.RNN(1, hidden, LAYERS, nonlinearity="tanh", batch_first=True), hidden)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∂loss/∂x_{T-k}‖ over the batch for k = 1..T (index k - 1).

    In float64, on a copy: the RNN's gradient drops below float32's smallest number (1e-45) within ~100 steps,
    and a curve of zeros would hide how fast it falls.
    """
    model = copy.deepcopy(model).double()
    x = x.double().requires_grad_(True)
    F.mse_loss(model(x), y.double()).backward()
    return x.grad.norm(dim=(0, 2)).flip(0)


@dataclass
class Run:
    kind: str
    params: int
    init_mse: float = math.nan
    test_mse: float = math.nan
    seconds: float = 0.0
    grad_init: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    grad_trained: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    gates: list[dict[str, float]] = field(default_factory=list)


def train_and_measure(kind: str, length: int, args: argparse.Namespace) -> Run:
    model = build(kind, args.seed)
    run = Run(kind, n_params(model))
    test_x, test_y = make_batch(args.test_size, length, torch.Generator().manual_seed(10_000 + length), exact=True)
    probe_x, probe_y = test_x[: args.probe_size], test_y[: args.probe_size]
    with torch.no_grad():
        run.init_mse = F.mse_loss(model(test_x), test_y).item()
    run.grad_init = input_gradient(model, probe_x, probe_y)

    gen = torch.Generator().manual_seed(args.seed * 1_000 + length)  # the same batches for both models
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=max(0.05, 2 / args.steps)
    )
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = make_batch(args.batch_size, length, gen)
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if args.verbose and step % 250 == 0:
            print(f"    {kind} L={length} step {step}: train MSE {loss.item():.4f}", flush=True)
    run.seconds = time.perf_counter() - started

    with torch.no_grad():
        run.test_mse = F.mse_loss(model(test_x), test_y).item()
    run.grad_trained = input_gradient(model, probe_x, probe_y)
    if kind == "lstm":  # replay the trained weights through the readable cell to look at its gates
        reference = ReferenceLSTM(1, LSTM_HIDDEN, LAYERS)
        reference.load_state_dict(model.rnn.state_dict())
        with torch.no_grad():
            _, _, gates = reference(probe_x[:64], record_gates=True)
        run.gates = gate_summary(gates)
        # The median over (sequence, unit) is set by the many units that hold nothing at a given time; what matters
        # is whether, in each sequence, some unit's cell state survives from the spike to the end.
        for layer, summary in zip(gates, run.gates, strict=True):
            longest = memory_lengths(layer["forget"]).max(dim=1).values  # (sequences,)
            summary["longest_unit"] = longest.float().median().item()
            summary["spanning_L"] = (longest >= length).float().mean().item()
    return run


def fmt(v: float) -> str:
    return f"{v:.2e}" if v < 1e-3 or v >= 1e3 else f"{v:.4f}"


def machine() -> str:
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )


def plot(results: dict[int, dict[str, Run]], zero_mse: dict[int, float], path: Path) -> str:
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipped the plot (pip install matplotlib)"
    lengths = sorted(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(lengths, [results[n]["lstm"].test_mse for n in lengths], "o-", label="LSTM (2 layers)")
    ax1.plot(lengths, [results[n]["rnn"].test_mse for n in lengths], "s-", label="tanh RNN (2 layers)")
    ax1.plot(lengths, [zero_mse[n] for n in lengths], "k--", label="forecast 0")
    ax1.set(xscale="log", yscale="log", xlabel="delay L (steps)", ylabel="test MSE", title="Error vs delay")
    ax1.set_xticks(lengths, [str(n) for n in lengths])
    ax1.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax1.legend()
    longest = lengths[-1]
    for kind, colour in (("lstm", "C0"), ("rnn", "C1")):
        run = results[longest][kind]
        k = torch.arange(1, longest + 1)
        name = "LSTM" if kind == "lstm" else "RNN"
        ax2.plot(k, run.grad_init[:longest], ":", color=colour, label=f"{name} at init")
        ax2.plot(k, run.grad_trained[:longest], "-", color=colour, label=f"{name} trained")
    ax2.axvline(longest, color="grey", lw=0.8)
    ax2.set(
        yscale="log",
        xlabel="k (input at T - k; the spike is at k = L)",
        ylabel=r"$\|\partial\,\mathrm{loss} / \partial x_{T-k}\|$",
        title=f"Vanishing gradient, L = {longest}",
    )
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return f"saved the plot to {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: L = 25, 100 and few steps (< 1 min)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--lengths", type=int, nargs="+", help="delays L (default 25 50 100 200)")
    parser.add_argument("--steps", type=int, help="training steps per model and L (default 1500; 300 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=2048)
    parser.add_argument("--probe-size", type=int, default=256, help="sequences in the gradient probe")
    parser.add_argument("--verbose", action="store_true", help="print the training loss every 250 steps")
    args = parser.parse_args()
    args.lengths = args.lengths or ([25, 100] if args.quick else [25, 50, 100, 200])
    args.steps = args.steps or (300 if args.quick else 1500)
    torch.set_num_threads(1)  # leave the other cores alone; also makes the timings comparable

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.perf_counter()
    lstm, rnn = build("lstm", args.seed), build("rnn", args.seed)
    say(f"# long_memory.py{' --quick' if args.quick else ''} — {datetime.date.today().isoformat()}")
    say(f"machine: {machine()}")
    say(
        f"task: x = N(0, {NOISE}²) noise over T = L + {MARGIN} steps plus a spike U(-{AMPLITUDE}, {AMPLITUDE}) "
        f"k steps before the end; forecast the spike at the last step. Train: k log-uniform on 1..L; test: k = L."
    )
    say(
        f"budget (same for both): {args.steps} steps × batch {args.batch_size}, AdamW lr {args.lr} one-cycle, "
        f"weight decay 0.01, clip 1.0, seed {args.seed}; test {args.test_size} sequences, gradient probe "
        f"the first {args.probe_size}"
    )
    say(
        f"LSTM: {LAYERS} layers × {LSTM_HIDDEN} units, forget bias 1: {n_params(lstm)} parameters; "
        f"tanh RNN: {LAYERS} layers × {rnn.rnn.hidden_size} units: {n_params(rnn)} parameters"
    )
    say()

    results: dict[int, dict[str, Run]] = {}
    zero_mse: dict[int, float] = {}
    for length in args.lengths:
        _, test_y = make_batch(args.test_size, length, torch.Generator().manual_seed(10_000 + length), exact=True)
        zero_mse[length] = test_y.pow(2).mean().item()
        results[length] = {}
        for kind in ("lstm", "rnn"):
            run = train_and_measure(kind, length, args)
            results[length][kind] = run
            say(
                f"L = {length:3d}  {kind:4s}  test MSE {fmt(run.test_mse)} (at init {fmt(run.init_mse)}, "
                f"forecast 0: {fmt(zero_mse[length])})  trained in {run.seconds:.1f} s"
            )

    say()
    say(
        "| delay L | LSTM test MSE | tanh RNN test MSE | forecast-0 MSE | RNN / LSTM "
        "| ‖∂loss/∂x_{T-L}‖ at init, LSTM / RNN | trained, LSTM / RNN |"
    )
    say("|---:|---:|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        lstm_run, rnn_run = results[length]["lstm"], results[length]["rnn"]
        say(
            f"| {length} | {fmt(lstm_run.test_mse)} | {fmt(rnn_run.test_mse)} | {fmt(zero_mse[length])} "
            f"| {rnn_run.test_mse / lstm_run.test_mse:.1f}× "
            f"| {lstm_run.grad_init[length - 1]:.1e} / {rnn_run.grad_init[length - 1]:.1e} "
            f"| {lstm_run.grad_trained[length - 1]:.1e} / {rnn_run.grad_trained[length - 1]:.1e} |"
        )
    say()
    say("Input-gradient norm ‖∂loss/∂x_{T-k}‖ (probe batch; the spike is at k = L):")
    for length in args.lengths:
        ks = [k for k in REPORT_K if k <= length]
        say(f"L = {length}: " + "  ".join(f"k={k}" for k in ks))
        for kind in ("lstm", "rnn"):
            for phase in ("init", "trained"):
                curve = getattr(results[length][kind], f"grad_{phase}")
                say(f"  {kind:4s} {phase:7s} " + "  ".join(f"{curve[k - 1].item():.1e}" for k in ks))
    say()
    say(
        "Trained LSTM gates (lstmcast.model.reference.gate_summary on 64 test sequences). memory = steps back until the"
    )
    say("product of forget gates falls below 0.5: median over (sequence, unit), then the longest-lived unit of each")
    say("sequence (median over sequences) and the share of sequences where some unit's cell state spans the L steps:")
    for length in args.lengths:
        for k, layer in enumerate(results[length]["lstm"].gates):
            say(
                f"  L = {length:3d} layer {k}: forget {layer['mean_forget']:.3f}  input {layer['mean_input']:.3f}  "
                f"output {layer['mean_output']:.3f}  saturated {layer['saturated_fraction']:.2f}  "
                f"memory {layer['memory_length']:.0f}, longest unit {layer['longest_unit']:.0f}, "
                f"spans L in {layer['spanning_L']:.0%} (T = {length + MARGIN})"
            )
    say()
    suffix = "_quick" if args.quick else ""
    say(plot(results, zero_mse, args.out / f"long_memory{suffix}.png"))
    say(f"total time {time.perf_counter() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"long_memory{suffix}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
