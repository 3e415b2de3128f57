"""OneScreen's command line: one module per command group, each with its own `register`.

`main` builds the parser from the groups and runs a command; `common` holds what several
groups share (engines, signals, the Redis a `serve` started). Run it as `python -m cli` or
`python cli.py`.
"""
