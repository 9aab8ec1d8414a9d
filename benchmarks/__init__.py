"""Benchmarks, each against a baseline of the same run; figures and PNGs go to benchmarks/results/.

A package so the tests can import a harness (`benchmarks.reliability`, `benchmarks.serving_bench`); it
imports nothing from tests/, and starts servers through tfgate.serving.processes like the tests do.
"""
