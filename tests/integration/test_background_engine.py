"""Background jobs' connections yield the CPU to the dashboards' on a shared machine."""

import os

import pytest
import sqlalchemy as sa

from data.engine import BACKGROUND_NICENESS, create_background_engine, create_db_engine
from data.scope import provision_web_role, web_database_url

pytestmark = pytest.mark.integration


def backend(engine: sa.Engine) -> tuple[int, int, str]:
    """(backend pid, its OS niceness, max_parallel_workers_per_gather) of a pooled connection."""
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        parallel = conn.execute(sa.text("SHOW max_parallel_workers_per_gather")).scalar_one()
    return pid, os.getpriority(os.PRIO_PROCESS, pid), parallel


def test_background_backends_run_below_the_dashboards_and_alone(db_url):
    jobs = create_background_engine(db_url)
    web = create_db_engine(db_url)
    try:
        jobs_pid, jobs_nice, jobs_parallel = backend(jobs)
        web_pid, web_nice, web_parallel = backend(web)
        assert jobs_pid != web_pid
        assert (jobs_nice, jobs_parallel) == (BACKGROUND_NICENESS, "0")
        # the dashboards' and ingest's connections keep the server's defaults
        assert web_nice == 0 and web_parallel != "0"
        # the pooled connection keeps its priority for the next job
        assert backend(jobs)[:2] == (jobs_pid, BACKGROUND_NICENESS)
    finally:
        jobs.dispose()
        web.dispose()


def test_a_role_that_may_not_see_the_server_still_connects(engine, db_url):
    # the web role may not read data_directory: no priority change, no error, queries run
    provision_web_role(engine)
    jobs = create_background_engine(web_database_url(db_url))
    try:
        with jobs.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "onescreen_web"
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert os.getpriority(os.PRIO_PROCESS, pid) == 0
    finally:
        jobs.dispose()
