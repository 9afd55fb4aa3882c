"""A readable LSTM written straight from the classic equations — a drop-in for nn.LSTM(batch_first=True).

For each layer and time step, with [h_{t-1}, x_t] the concatenation of the previous hidden state and the input:

    f_t = σ(W_f·[h_{t-1}, x_t] + b_f)         forget gate: how much of the old cell state to keep
    i_t = σ(W_i·[h_{t-1}, x_t] + b_i)         input gate: how much of the candidate to write
    C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)      candidate cell state
    o_t = σ(W_o·[h_{t-1}, x_t] + b_o)         output gate: how much of the cell state to expose
    C_t = f_t * C_{t-1} + i_t * C̃_t           the cell state: a gated running sum, the long memory
    h_t = o_t * tanh(C_t)

Layer k > 0 reads layer k-1's h_t as its x_t. The parameters have exactly nn.LSTM's names, shapes, packing
(gates stacked i, f, g, o; g is C̃) and default initialisation, so state_dicts move between the two unchanged.
It is slow (a Python loop over time); it exists to be read, checked against nn.LSTM, and to record the gates.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

Gates = dict[str, torch.Tensor]
State = tuple[torch.Tensor, torch.Tensor]


def lstm_cell(
    x_t: torch.Tensor,
    h_prev: torch.Tensor,
    c_prev: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, Gates]:
    """One step of one layer from nn.LSTM-layout parameters: x_t (B, in), h_prev and c_prev (B, H)."""
    hidden = h_prev.shape[-1]
    # The equations' W acts on [h_{t-1}, x_t]; nn.LSTM stores its two column blocks separately
    # (W·[h, x] = W_hh·h + W_ih·x), and keeps cuDNN's two bias vectors, which only ever appear summed:
    # b = b_ih + b_hh.
    W = torch.cat([weight_hh, weight_ih], dim=1)  # (4H, H + in)
    b = bias_ih + bias_hh
    W_i, W_f, W_C, W_o = W.split(hidden)  # nn.LSTM stacks the gates' rows as i, f, g (= C̃), o
    b_i, b_f, b_C, b_o = b.split(hidden)
    h_x = torch.cat([h_prev, x_t], dim=1)  # [h_{t-1}, x_t]

    f_t = torch.sigmoid(h_x @ W_f.T + b_f)
    i_t = torch.sigmoid(h_x @ W_i.T + b_i)
    C_tilde = torch.tanh(h_x @ W_C.T + b_C)
    o_t = torch.sigmoid(h_x @ W_o.T + b_o)
    c_t = f_t * c_prev + i_t * C_tilde
    h_t = o_t * torch.tanh(c_t)
    return h_t, c_t, {"forget": f_t, "input": i_t, "output": o_t}


class ReferenceLSTM(nn.Module):
    """nn.LSTM(input_size, hidden_size, num_layers, dropout=dropout, batch_first=True), one equation at a time."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, batch_first: bool = True
    ) -> None:
        super().__init__()
        if not batch_first:
            raise ValueError("ReferenceLSTM supports only batch_first=True")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout should be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout, self.batch_first = float(dropout), batch_first
        # Registered in nn.LSTM's order, so that the same seed draws the same initial weights.
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(4 * hidden_size, layer_in)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(4 * hidden_size)))
            self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(4 * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_params(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(
        self, x: torch.Tensor, hx: State | None = None, record_gates: bool = False
    ) -> tuple[torch.Tensor, State] | tuple[torch.Tensor, State, list[Gates]]:
        """x (B, T, in), hx = (h_0, c_0) each (L, B, H) or None for zeros → out (B, T, H), (h_n, c_n) (L, B, H).

        With record_gates, also a list per layer of {"forget", "input", "output"} activations, each (B, T, H).
        """
        if x.dim() != 3:
            raise ValueError(f"ReferenceLSTM expects a batch (B, T, {self.input_size}), got shape {tuple(x.shape)}")
        batch, steps, _ = x.shape
        if hx is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        h_0, c_0 = hx
        layer_input, h_n, c_n, recorded = x, [], [], []
        for k in range(self.num_layers):
            h, c = h_0[k], c_0[k]
            outputs, gates = [], []
            for t in range(steps):
                h, c, g = lstm_cell(layer_input[:, t], h, c, *self.layer_params(k))
                outputs.append(h)
                gates.append(g)
            layer_input = torch.stack(outputs, dim=1)
            # nn.LSTM drops out between layers only, never on the top layer's output.
            if k < self.num_layers - 1 and self.dropout > 0.0:
                layer_input = F.dropout(layer_input, self.dropout, training=self.training)
            h_n.append(h)
            c_n.append(c)
            if record_gates:
                # Detached: the record is for analysis and should not keep the autograd graph alive.
                recorded.append({name: torch.stack([g[name] for g in gates], dim=1).detach() for name in gates[0]})
        state = (torch.stack(h_n), torch.stack(c_n))
        return (layer_input, state, recorded) if record_gates else (layer_input, state)


def memory_lengths(forget: torch.Tensor, keep: float = 0.5) -> torch.Tensor:
    """Forget gates (B, T, H) → (B, H) effective memory lengths, in steps.

    The number of steps back from the end after which the running product of forget gates — the share of the cell
    state written then that survives to the last step — first falls below `keep`; the full length T if it never does.
    """
    steps = forget.shape[1]
    survival = forget.flip(1).cumprod(dim=1)  # survival[:, k - 1] = f_{T-1} · f_{T-2} ··· f_{T-k}
    below = survival < keep
    first_below = below.float().argmax(dim=1) + 1  # argmax finds the first True
    return torch.where(below.any(dim=1), first_below, torch.full_like(first_below, steps))


def gate_summary(gates_per_layer: list[Gates], saturation: float = 0.05, keep: float = 0.5) -> list[dict[str, float]]:
    """Per layer: mean gate activations, the saturated fraction and the median effective memory length.

    A gate is saturated below `saturation` or above 1 - `saturation` (over all three gates). The memory length is
    `memory_lengths`' median over (batch, unit).
    """
    summary = []
    for gates in gates_per_layer:
        f, i, o = gates["forget"].float(), gates["input"].float(), gates["output"].float()
        lengths = memory_lengths(f, keep)
        all_gates = torch.cat([f.flatten(), i.flatten(), o.flatten()])
        saturated = ((all_gates < saturation) | (all_gates > 1.0 - saturation)).float().mean()
        summary.append(
            {
                "mean_forget": f.mean().item(),
                "mean_input": i.mean().item(),
                "mean_output": o.mean().item(),
                "saturated_fraction": saturated.item(),
                "memory_length": lengths.float().quantile(0.5).item(),
                # Memory often lives in a few units: the longest-lived unit per window, median over windows.
                "memory_longest": lengths.max(dim=1).values.float().quantile(0.5).item(),
            }
        )
    return summary
