# OneScreen web app. The database is a separate PostGIS server: set DATABASE_URL.
# The live city needs two more processes from this image, next to an MQTT broker
# (ONESCREEN_MQTT_URL): `python cli.py ingest-mqtt` (one per broker session) and
# `python cli.py rules run` (one per database). `python cli.py serve` runs all of it in one
# process tree for a single machine.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk libgeos-c1v5 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0
COPY . .
RUN useradd --system --no-create-home onescreen
USER onescreen
EXPOSE 8050
CMD ["sh", "-c", "python cli.py db upgrade && gunicorn --bind 0.0.0.0:8050 --workers 4 app:server"]
