"""Weights ⇄ file: the network and the typed checkpoint that carries it.

Owns the stacked LSTM (`lstm`: `ModelSpec`, `StackedLSTM`, `Ensemble`), the LSTM cell written
from its equations (`reference`), the `Checkpoint` (plain data + tensors, loaded without
unpickling code, an upgrade chain for older formats) and the per-series `Selection` it stores.

May import: base, learn.
"""
