"""Component ids, in one place so pages, callbacks and tests agree."""

from typing import Any

# a plain id, or a pattern-matching one ({"type": …, "key": …})
ComponentId = str | dict[str, Any]

URL = "os-url"
REFRESH = "os-refresh"
PAGE_META = "os-page-meta"
LANG_TOGGLE = "os-lang-toggle"
CLOCK = "os-clock"

OVERVIEW_MAP = "overview-map"
OVERVIEW_AREAS = "overview-areas"
OVERVIEW_LABELS = "overview-labels"
OVERVIEW_LEGEND = "overview-legend"
OVERVIEW_TILES = "overview-tiles"
OVERVIEW_TIMELINE = "overview-timeline"
OVERVIEW_FEED = "overview-feed"
OVERVIEW_STATUS = "overview-status"
OVERVIEW_MAP_SENT = "overview-map-sent"
# controls whose values live in the URL: one clientside callback keeps the query in sync
QUERY = "os-query"
QUERY_STORE = "os-query-store"
METRIC = {"type": QUERY, "key": "metric"}
CATEGORY = {"type": QUERY, "key": "category"}
STACK = {"type": QUERY, "key": "stack"}

DISTRICT_MAP = "district-map"
DISTRICT_AREAS = "district-areas"
DISTRICT_CELLS = "district-cells"
DISTRICT_DEVICES = "district-devices"
DISTRICT_LEGEND = "district-legend"
DISTRICT_TILES = "district-tiles"
DISTRICT_TIMELINE = "district-timeline"
DISTRICT_FEED = "district-feed"
DISTRICT_RANKING = "district-ranking"
DISTRICT_CRUMBS = "district-crumbs"
DISTRICT_STATE = "district-state"
DISTRICT_MAP_SENT = "district-map-sent"
DISTRICT_RANK_PICK = "district-rank-pick"
STREET = {"type": QUERY_STORE, "key": "street"}
# 回放: the replayed instant (in the URL as `at=`) and the player (components/replay.py)
REPLAY_AT = {"type": QUERY_STORE, "key": "at"}
REPLAY_BAR = "os-replay-bar"
REPLAY_SPEED = "os-replay-speed"
REPLAY_TIME = "os-replay-time"
REPLAY_SLIDER = "os-replay-slider"
REPLAY_INPUT = "os-replay-input"
REPLAY_PLAY = "os-replay-play"
REPLAY_LIVE = "os-replay-live"
REPLAY_NOTE = "os-replay-note"
LAYER = {"type": QUERY, "key": "layer"}

INCIDENT_TABLE = "incidents-table"
INCIDENT_MAP = "incidents-map"
INCIDENT_POINTS = "incidents-points"
INCIDENT_DETAIL = "incidents-detail"
INCIDENT_DETAIL_MORE = "incidents-detail-more"
INCIDENT_COUNT = "incidents-count"
INCIDENT_DISTRICT = "incidents-district"
INCIDENT_CATEGORY = "incidents-category"
INCIDENT_SEVERITY = "incidents-severity"
INCIDENT_STATUS = "incidents-status"
INCIDENT_WINDOW = "incidents-window"
INCIDENT_SELECTED = "incidents-selected"
INCIDENT_ACTIONS = "incidents-actions"
INCIDENT_ACTIONS_SHOWN = "incidents-actions-shown"
INCIDENT_ACTION = "os-incident-action"  # pattern id type: {"type": ..., "action": ...}
INCIDENT_NOTE = "incidents-note"
INCIDENT_ASSIGNEE = "incidents-assignee"
INCIDENT_ACTION_DONE = "incidents-action-done"
INCIDENT_ACTION_MESSAGE = "incidents-action-message"

DEVICE_SUMMARY = "device-summary"
DEVICE_SERIES = "device-series"
DEVICE_WINDOW = "device-window"
DEVICE_INCIDENTS = "device-incidents"
DEVICE_ID = "device-id"

LANG = "os-lang"
CLOCK_TICK = "os-clock-tick"

# freshness: each panel's as-of store and badge (pattern ids keyed by panel), their settings
ASOF = "os-asof"
FRESH = "os-fresh"
FRESH_CONFIG = "os-fresh-config"

# walls and kiosks
WALL_ROOT = "wall-root"
WALL_CANVAS = "wall-canvas"
WALL_CONFIG = "wall-config"
WALL_MARKS = "wall-marks"
WALL_WARNINGS = "wall-warnings"
WALL_ALERTS = "wall-alerts"
WALL_WATCH = "wall-watch"
WALL_ATTENTION = "wall-attention"
WALL_ATTENTION_CARD = "wall-attention-card"
WALL_ATTENTION_BODY = "wall-attention-body"
WALL_ATTENTION_CHART = "wall-attention-chart"
WALL_ATTENTION_CHART_BOX = "wall-attention-chart-box"
WALL_CHARTS_DEFER = "wall-charts-defer"
WALL_COUNTDOWN = "wall-countdown"
WALL_QUEUE = "wall-queue"
WALL_TITLE = "wall-title"
WALL_REPLAY_TIME = "wall-replay-time"
WALL_PROGRESS = "wall-progress"
# the banner a wall shows while its data has stopped
WALL_STALE = "wall-stale"
# an event handled as one: the incident centre's ?event=G (its members listed) and its bar
INCIDENT_EVENT = "incidents-event"
EVENT_BAR = "incidents-event-bar"
EVENT_SUMMARY = "incidents-event-summary"
EVENT_FORM = "incidents-event-form"
EVENT_FORM_SHOWN = "incidents-event-form-shown"
EVENT_ACTION = "os-event-action"  # pattern id type: {"type": ..., "action": ...}
EVENT_NOTE = "incidents-event-note"
EVENT_ASSIGNEE = "incidents-event-assignee"
EVENT_ACTION_DONE = "incidents-event-action-done"
EVENT_ACTION_MESSAGE = "incidents-event-action-message"
