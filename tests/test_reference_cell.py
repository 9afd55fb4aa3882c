"""ReferenceLSTM against nn.LSTM: same parameters, same numbers, same gradients; and the gate summary."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lstmcast.model.lstm import ModelSpec, StackedLSTM
from lstmcast.model.reference import ReferenceLSTM, gate_summary, lstm_cell, memory_lengths

TOL = {"atol": 1e-5, "rtol": 1e-5}


def pair(
    input_size: int, hidden: int, layers: int, dropout: float = 0.0, seed: int = 0
) -> tuple[nn.LSTM, ReferenceLSTM]:
    torch.manual_seed(seed)
    fused = nn.LSTM(input_size, hidden, layers, dropout=dropout, batch_first=True)
    torch.manual_seed(seed + 1)  # a different draw, so that load_state_dict has something to do
    reference = ReferenceLSTM(input_size, hidden, layers, dropout=dropout, batch_first=True)
    reference.load_state_dict(fused.state_dict(), strict=True)
    return fused, reference


@pytest.mark.parametrize(("layers", "with_state"), [(1, False), (2, True), (3, False), (3, True)])
def test_matches_nn_lstm_values_and_gradients(layers: int, with_state: bool) -> None:
    batch, steps, inputs, hidden = 3, 9, 4, 6
    fused, reference = pair(inputs, hidden, layers)
    gen = torch.Generator().manual_seed(42)
    x = torch.randn(batch, steps, inputs, generator=gen)
    hx = None
    if with_state:
        hx = (torch.randn(layers, batch, hidden, generator=gen), torch.randn(layers, batch, hidden, generator=gen))
    # A random linear read-out of every output, so each of them gets its own gradient.
    w_out = torch.randn(batch, steps, hidden, generator=gen)
    w_h, w_c = torch.randn(2, layers, batch, hidden, generator=gen)

    results = []
    for model in (fused, reference):
        xg = x.clone().requires_grad_(True)
        out, (h_n, c_n) = model(xg, hx)
        ((out * w_out).sum() + (h_n * w_h).sum() + (c_n * w_c).sum()).backward()
        results.append((out, h_n, c_n, xg.grad, {n: p.grad for n, p in model.named_parameters()}))

    (out_a, h_a, c_a, gx_a, gp_a), (out_b, h_b, c_b, gx_b, gp_b) = results
    assert out_b.shape == (batch, steps, hidden)
    assert h_b.shape == c_b.shape == (layers, batch, hidden)
    torch.testing.assert_close(out_b, out_a, **TOL)
    torch.testing.assert_close(h_b, h_a, **TOL)
    torch.testing.assert_close(c_b, c_a, **TOL)
    torch.testing.assert_close(gx_b, gx_a, **TOL)
    assert gp_a.keys() == gp_b.keys()
    for name in gp_a:
        torch.testing.assert_close(gp_b[name], gp_a[name], **TOL, msg=lambda m, n=name: f"grad of {n}: {m}")


def test_one_step_by_hand_from_the_equations() -> None:
    """nn.LSTM's packed i, f, g, o rows and its two biases, mapped onto W_f, W_i, W_C, W_o acting on [h, x]."""
    inputs, hidden, batch = 3, 4, 2
    torch.manual_seed(0)
    fused = nn.LSTM(inputs, hidden, 1, batch_first=True)
    x_t, h_prev, c_prev = torch.randn(batch, inputs), torch.randn(batch, hidden), torch.randn(batch, hidden)

    W_ih, W_hh = fused.weight_ih_l0.detach(), fused.weight_hh_l0.detach()  # (4H, in), (4H, H)
    b = (fused.bias_ih_l0 + fused.bias_hh_l0).detach()  # the equations' single b; nn.LSTM splits it in two
    rows = {gate: slice(k * hidden, (k + 1) * hidden) for k, gate in enumerate("ifgo")}  # packed order i, f, g, o

    def W(gate: str) -> torch.Tensor:  # the gate's W acting on [h_{t-1}, x_t]: (H, H + in)
        return torch.cat([W_hh[rows[gate]], W_ih[rows[gate]]], dim=1)

    W_i, W_f, W_C, W_o = W("i"), W("f"), W("g"), W("o")
    b_i, b_f, b_C, b_o = b[rows["i"]], b[rows["f"]], b[rows["g"]], b[rows["o"]]
    assert W_f.shape == (hidden, hidden + inputs)
    hx = torch.cat([h_prev, x_t], dim=1)  # [h_{t-1}, x_t]

    f_t = torch.sigmoid(hx @ W_f.T + b_f)
    i_t = torch.sigmoid(hx @ W_i.T + b_i)
    C_tilde = torch.tanh(hx @ W_C.T + b_C)
    o_t = torch.sigmoid(hx @ W_o.T + b_o)
    C_t = f_t * c_prev + i_t * C_tilde
    h_t = o_t * torch.tanh(C_t)

    with torch.no_grad():
        out, (h_n, c_n) = fused(x_t[:, None], (h_prev[None], c_prev[None]))
        h_ref, c_ref, gates = lstm_cell(x_t, h_prev, c_prev, W_ih, W_hh, fused.bias_ih_l0, fused.bias_hh_l0)
    torch.testing.assert_close(h_n[0], h_t, **TOL)
    torch.testing.assert_close(c_n[0], C_t, **TOL)
    torch.testing.assert_close(out[:, 0], h_t, **TOL)
    torch.testing.assert_close(h_ref, h_t, **TOL)
    torch.testing.assert_close(c_ref, C_t, **TOL)
    for name, expected in {"forget": f_t, "input": i_t, "output": o_t}.items():
        torch.testing.assert_close(gates[name], expected, **TOL)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_state_dict_keys_and_shapes_match_nn_lstm(layers: int) -> None:
    fused = nn.LSTM(5, 7, layers, batch_first=True)
    reference = ReferenceLSTM(5, 7, layers, batch_first=True)
    a, b = fused.state_dict(), reference.state_dict()
    assert list(a) == list(b)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert (reference.input_size, reference.hidden_size, reference.num_layers) == (5, 7, layers)
    fused.load_state_dict(reference.state_dict(), strict=True)  # and back the other way


def test_same_seed_same_initialisation() -> None:
    torch.manual_seed(7)
    fused = nn.LSTM(3, 8, 2, batch_first=True)
    torch.manual_seed(7)
    reference = ReferenceLSTM(3, 8, 2, batch_first=True)
    bound = 1 / math.sqrt(8)
    for (name, p), q in zip(fused.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q), name
        assert q.abs().max() <= bound


def test_dropout_between_layers_only_in_training() -> None:
    # p = 1 zeroes layer 0's output whole, so the result is deterministic and comparable; the top layer's
    # output must not be dropped (it would be all zeros).
    fused, reference = pair(3, 5, 2, dropout=1.0)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        out_a, _ = fused(x)
        out_b, _ = reference(x)
        torch.testing.assert_close(out_b, out_a, **TOL)
        assert out_b.abs().max() > 0
        fused.eval(), reference.eval()
        torch.testing.assert_close(reference(x)[0], fused(x)[0], **TOL)
        assert not torch.allclose(reference(x)[0], out_b)


def test_drop_in_for_stacked_lstm() -> None:
    torch.manual_seed(0)
    model = StackedLSTM(ModelSpec(n_inputs=2, n_targets=1, lookback=12, horizon=3, hidden_size=8, num_layers=2))
    x = torch.randn(4, 12, 2)
    expected = model(x)
    fused_state = model.state_dict()
    model.lstm = ReferenceLSTM(**{k: getattr(model.lstm, k) for k in ("input_size", "hidden_size", "num_layers")})
    model.load_state_dict(fused_state, strict=True)
    torch.testing.assert_close(model(x), expected, **TOL)


def test_record_gates_shapes_and_ranges() -> None:
    _, reference = pair(2, 4, 2)
    x = torch.randn(3, 5, 2)
    out, (h_n, c_n) = reference(x)
    out_r, (h_r, c_r), gates = reference(x, record_gates=True)
    torch.testing.assert_close(out_r, out)
    torch.testing.assert_close((h_r, c_r), (h_n, c_n))
    assert len(gates) == 2
    for layer in gates:
        assert set(layer) == {"forget", "input", "output"}
        for g in layer.values():
            assert g.shape == (3, 5, 4)
            assert not g.requires_grad
            assert ((g > 0) & (g < 1)).all()


def test_gate_summary_constant_forget_gives_log_half_memory() -> None:
    f, steps = 0.9, 30  # log(0.5) / log(0.9) = 6.58: 0.9^6 = 0.53 ≥ 0.5 > 0.9^7 = 0.48
    shape = (2, steps, 3)
    gates = {"forget": torch.full(shape, f), "input": torch.full(shape, 0.5), "output": torch.full(shape, 0.5)}
    [summary] = gate_summary([gates])
    assert summary["memory_length"] == math.ceil(math.log(0.5) / math.log(f)) == 7
    assert summary["mean_forget"] == pytest.approx(0.9)
    assert summary["saturated_fraction"] == 0.0
    assert all(type(v) is float for v in summary.values())
    # A forget gate that never lets the product fall below 0.5 remembers the whole sequence.
    gates["forget"] = torch.full(shape, 0.999)
    assert gate_summary([gates])[0]["memory_length"] == steps


def test_gate_summary_saturated_fraction_and_median() -> None:
    batch, steps, units = 1, 4, 4
    forget = torch.full((batch, steps, units), 0.99)  # units 2, 3: 8 of 16 saturated, never forget (length T)
    forget[..., :2] = 0.2  # units 0, 1: not saturated, forget at once (length 1) — so the median is 2.5
    inputs = torch.full((batch, steps, units), 0.5)  # none saturated
    output = torch.full((batch, steps, units), 0.5)
    output[:, :, 0] = 0.01  # 4 of 16 saturated, below
    output[:, :, 1] = 0.96  # 4 of 16 saturated, above
    [summary] = gate_summary([{"forget": forget, "input": inputs, "output": output}])
    assert summary["saturated_fraction"] == pytest.approx((8 + 0 + 8) / 48)
    assert summary["memory_length"] == pytest.approx((1 + steps) / 2)
    assert memory_lengths(forget).tolist() == [[1, 1, steps, steps]]
    assert summary["mean_output"] == pytest.approx((4 * 0.01 + 4 * 0.96 + 8 * 0.5) / 16)
    assert len(gate_summary([{"forget": forget, "input": inputs, "output": output}] * 3)) == 3
