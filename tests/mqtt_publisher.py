"""A QoS 1 MQTT publisher for tests: `publish` returns once the broker holds the message."""

from __future__ import annotations

import uuid
from typing import Any

import paho.mqtt.client as mqtt

from ingest.broker import parse_broker_url


class Publisher:
    """Publishes with QoS 1 and waits for each PUBACK, logged in with `credentials` (a token's
    MQTT login: the broker lets nobody in anonymously)."""

    def __init__(self, url: str, credentials: Any = None) -> None:
        host, port = parse_broker_url(url)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        if credentials is not None:
            self.client.username_pw_set(credentials.username, credentials.password)
        self.client.max_inflight_messages_set(100)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str) -> None:
        """Send one message; returns once the broker has acknowledged it."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
