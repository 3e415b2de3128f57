"""POST a Dash callback through the Flask stack exactly as the browser's renderer would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _parse(text: str) -> Any:
    return json.loads(text) if text.startswith("{") else text


def post_callback(app, output_fragment: str, value_of: Callable[[Any, str], Any]):
    """POST the callback whose output names `output_fragment`; `value_of(id, property)` gives
    each input's and state's value. Returns the Flask response."""
    key = next(k for k in app.callback_map if output_fragment in k)
    spec = app.callback_map[key]

    def fill(items: list[dict]) -> list[dict]:
        return [
            {
                "id": _parse(item["id"]),
                "property": item["property"],
                "value": value_of(_parse(item["id"]), item["property"]),
            }
            for item in items
        ]

    outputs = [
        {"id": _parse(p.rsplit(".", 1)[0]), "property": p.rsplit(".", 1)[1]}
        for p in key.strip(".").split("...")
    ]
    return app.server.test_client().post(
        "/_dash-update-component",
        json={
            "output": key,
            "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": fill(spec["inputs"]),
            "state": fill(spec["state"]),
            "changedPropIds": [],
        },
    )
