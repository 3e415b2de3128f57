"""gunicorn settings for `gunicorn app:server` (read from the working directory by default).

Everything comes from OneScreen's settings (ONESCREEN_* environment, .env): bind address and
port, worker processes and threads. Several workers need ONESCREEN_REDIS_URL so they share one
results cache and hear about new data; `python cli.py serve` starts a local Redis for them.
"""

import sys

from config import get_settings

_settings = get_settings()

wsgi_app = "app:server"
bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.web_workers
# threads: a callback mostly waits on PostgreSQL or Redis; keep-alive connections stay cheap
worker_class = "gthread"
threads = _settings.web_threads
# longer than a dashboard's refresh period: a connection must not close just as a viewer reuses it
keepalive = 75
# `serve`'s nginx waits a little longer (localservers/nginx.py), so this one ends a slow request
timeout = int(_settings.web_timeout_seconds)
graceful_timeout = 15
# the heartbeat file in memory, not on a possibly slow disk
worker_tmp_dir = "/dev/shm"
loglevel = _settings.log_level.lower()
errorlog = "-"
accesslog = None
# the app is built in each worker after the fork: no connection or thread crosses a fork
preload_app = False
proc_name = "onescreen-web"
# what a worker may spend preparing before it serves anyway (seed scale: a few seconds)
WARM_UP_BUDGET_S = 30.0
# how long a thread runs Python before another waiting thread may take over (default 5 ms)
SWITCH_INTERVAL_S = 0.001


def post_worker_init(worker) -> None:
    """Finish Dash's set-up before serving; prepare what first views fetch (web/warmup.py);
    keep the garbage collector's full passes short."""
    import gc

    from web.warmup import warm_before_serving

    # Dash sets itself up on a worker's first request and flags that before it is done, so
    # other threads' first requests (the page's scripts, in parallel) found no registered
    # component libraries and failed; one request now, before any thread serves
    worker.wsgi.test_client().get("/_dash-layout")
    # before accepting: a first view then finds its device snapshot and boundaries ready, and
    # no warm-up competes with it (gunicorn's heartbeat kept meanwhile)
    warm_before_serving(worker.wsgi, budget_s=WARM_UP_BUDGET_S, heartbeat=worker.notify)
    # modules, layouts and reference data live as long as the worker: scanning them on every
    # full collection stalls every request of the worker at once
    gc.freeze()
    # a request that mostly waits on Redis and PostgreSQL takes the interpreter back after
    # each one; beside a panel being rendered (a request's or a background renewal's), the
    # default 5 ms before a running thread must hand it over made every such wait up to 5 ms
    # longer, a dozen times per request
    sys.setswitchinterval(SWITCH_INTERVAL_S)
