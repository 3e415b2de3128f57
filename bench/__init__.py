"""Benchmarks and soaks run by hand (`python -m bench.<name>`): platform, ingest, dashboard, load
and the wall soak; `harness` holds the servers they start and stop."""
