-- OneScreen schema, revision 0003: video walls and kiosks (display tokens, saved playlists).

-- A named wall playlist, so different walls can show different rotations. `views` is written in
-- the same grammar as the `/wall?views=` URL parameter (components/playlist.py parses it).
CREATE TABLE wall_playlist (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    views        text NOT NULL CHECK (length(views) BETWEEN 1 AND 4000),
    interval_s   integer NOT NULL DEFAULT 30 CHECK (interval_s BETWEEN 5 AND 3600),
    attention_s  integer NOT NULL DEFAULT 60 CHECK (attention_s BETWEEN 5 AND 3600),
    -- NULL = the display's default metric
    metric       text CHECK (metric IN ('open_incidents', 'incidents_per_100km2', 'online_rate',
                                        'readings_last_hour')),
    sound        boolean NOT NULL DEFAULT false,
    -- NULL = never reload the page on a timer
    reload_hours real CHECK (reload_hours > 0 AND reload_hours <= 720),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Walls and kiosks are unattended browsers: they open with a read-only, revocable display token
-- in their URL, never a user session. Only the SHA-256 of a token is stored.
CREATE TABLE display_token (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    kind         text NOT NULL CHECK (kind IN ('wall', 'kiosk')),
    -- NULL = the whole city; no foreign key, so a re-seeded city keeps its displays' tokens
    district_adcode text,
    playlist     text REFERENCES wall_playlist ON DELETE SET NULL,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_seen_at timestamptz
);
