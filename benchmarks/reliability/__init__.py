"""Reliability runs against real processes on loopback, in three parts: `load` (the requests and their
records), `scenarios` (the five runs and the fuzz run, with the tiny exact `models` they serve) and
`report` (the README table); `python -m benchmarks.reliability` runs them (see __main__.py)."""
