"""Series → weights: the learning steps between validated series and a trained network.

Owns the chronological split (`split`), per-series scaling fitted on training rows (`scaling`),
the panel as one tensor with its windows (`dataset`, `windows`, `shuffle`), the optimiser
(`optim`), the resumable training loop (`loop`), the device and thread count (`device`), memory
checks (`resources`) and several processes (`distributed`, `launch`). Knows nothing of files,
checkpoints or the command line.

May import: base, data.
"""
