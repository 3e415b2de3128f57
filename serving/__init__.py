"""Production serving: gunicorn workers, the shared Redis cache and its new-data channel."""
