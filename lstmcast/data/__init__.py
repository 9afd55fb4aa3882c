"""Bytes ⇄ series: everything that reads data in or writes forecasts out.

Owns the sources (CSV, Parquet, SQL), the readers that parse them (`readers`, `fastcsv`), the
validated series (`frame`: ids, columns, gap filling; `grid`: times, frequency, regular grid),
time and season helpers (`calendar`), database URLs (`db`), the forecast sinks (`sinks`,
`sqlsink`) and the forecast archive (`archive`). Only this package (and `forecast`/`flows`,
which consume its frames) touches pandas.

May import: base.
"""
