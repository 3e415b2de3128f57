"""Early warning (趋势智能预判): pure, vectorised detectors over many series at once.

`trend` forecasts a breach of a limit from recent readings and the daily cycle; `baseline` learns
each device's normal by hour of day or week; `health` finds sensors that lie; `engine` keeps the
per-series windows and turns the detectors' verdicts into open / update / resolve decisions. No
SQL and no web here: data/foresight_store.py stores, ingest/rules_engine.py drives.
"""
