"""Device ingest: row validation, the store path HTTP and MQTT share, the MQTT worker, the incident
rules and their loop, background upkeep, and the child processes `serve` keeps alive."""
