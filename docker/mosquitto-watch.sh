#!/bin/sh
# Runs Mosquitto with the logins the ingest container writes from the database (the mqtt-auth
# volume, mounted read-only at /mosquitto/auth-in): copies them to /mosquitto/auth, readable by
# the mosquitto account only, and reloads the broker (SIGHUP) whenever they change. Until the
# ingest container has written them, nobody can connect.
set -eu
IN=/mosquitto/auth-in
OUT=/mosquitto/auth
mkdir -p "$OUT"

copy() {
    changed=1
    for name in passwd acl; do
        if [ -f "$IN/$name" ] && ! cmp -s "$IN/$name" "$OUT/$name"; then
            cp "$IN/$name" "$OUT/$name.new" && mv "$OUT/$name.new" "$OUT/$name"
            changed=0
        fi
        [ -f "$OUT/$name" ] || : > "$OUT/$name"
        chown mosquitto:mosquitto "$OUT/$name"
        chmod 600 "$OUT/$name"
    done
    return $changed
}

copy || true
mosquitto -c /mosquitto/config/mosquitto.conf &
broker=$!
trap 'kill -TERM "$broker"; wait "$broker"; exit 0' TERM INT
while kill -0 "$broker" 2>/dev/null; do
    sleep 2
    if copy; then
        kill -HUP "$broker"
    fi
done
wait "$broker"
