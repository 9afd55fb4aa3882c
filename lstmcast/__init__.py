"""lstmcast: stacked-LSTM time-series forecasting from the command line, configured by one YAML file.

The packages follow the data (docs/architecture.md draws them):

    data ──▶ learn ──▶ model ──▶ forecast ──▶ flows ──▶ cli
    (bytes ⇄ series) (series → weights) (weights ⇄ file) (weights + series → forecasts) (commands' work) (the command line)

Each package imports only those to its left and the base modules at the top of this package
(`config`, `errors`, `atomic`, `lock`, `report`, `yamlsafe`, `cores`, `vocabulary`, `locations`,
`durations`, `extras`), which import only each other; each package's docstring says what it owns and what it
may import, and tests/test_architecture.py holds the code to it.

May import: base.
"""

__version__ = "0.1.0"
