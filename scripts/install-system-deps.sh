#!/usr/bin/env bash
# Install the Debian/Ubuntu packages OneScreen needs; skips what is already there.
# Runs as root, or through sudo when a normal user has it.
set -euo pipefail

packages=(
  postgresql-15 postgresql-15-postgis-3   # the embedded database and the tests' database
  chromium fonts-noto-cjk                 # browser tests and screenshots (Chinese glyphs)
  mosquitto                               # MQTT broker for device ingest
  redis-server                            # shared cache of the web workers
  nginx-light                             # the reverse proxy `serve` puts in front of them
  patroni etcd-server haproxy             # the highly available database (ONESCREEN_HA)
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "error: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
