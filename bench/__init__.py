"""Benchmarks: `make bench` (small, medium) and `make bench-large`. Never part of `make test`."""
