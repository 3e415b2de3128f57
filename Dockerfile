# OneScreen: one image for every process — the web app (the default command), and with another
# command the MQTT ingest worker (`python cli.py ingest-mqtt`), the background jobs
# (`python cli.py jobs`), migrations (`python cli.py db upgrade`) and the simulator.
# The database is a separate PostgreSQL 15+ / PostGIS 3 server (DATABASE_URL); several web
# workers share results through Redis (ONESCREEN_REDIS_URL). docker-compose.yml wires it all up.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every Python dependency ships as a self-contained manylinux wheel (shapely bundles GEOS,
# pyproj PROJ, pyogrio GDAL, psycopg[binary] libpq): the system packages are the CJK font and
# nginx, the buffering reverse proxy in front of gunicorn (compose's `proxy` service, `serve`),
# and HAProxy, the way to the database's leader and replicas in the HA profile
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk nginx-light haproxy \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group onescreen
# state of the ingest worker and simulator (their MQTT logins) and the broker's password and ACL
# files the ingest worker writes (docker-compose.yml mounts volumes here, owned by onescreen)
RUN mkdir -p /var/lib/onescreen/mqtt-auth && chown -R onescreen:onescreen /var/lib/onescreen

WORKDIR /app
COPY requirements.txt .
# the web server (gunicorn) and the shared cache client (redis) must come from requirements.txt
RUN pip install -r requirements.txt \
 && python -c "import gunicorn, redis"

COPY . .

# listen on every interface of the container; gunicorn.conf.py reads these
ENV ONESCREEN_HOST=0.0.0.0 \
    ONESCREEN_PORT=8050

USER onescreen
EXPOSE 8050
# bind, workers and threads come from ./gunicorn.conf.py (ONESCREEN_HOST/PORT/WEB_WORKERS/WEB_THREADS)
CMD ["gunicorn", "app:server"]
