-- OneScreen schema, revision 0004: users, sessions, audit, incident handling, row-level security.

-- People -----------------------------------------------------------------------------------------

CREATE TABLE app_user (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 100),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'district_manager', 'viewer')),
    -- a maintained library's self-describing hash (argon2id); never a password
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- The districts a district manager (or a district-bound viewer) works in; none = the whole city
-- for the city roles. A district manager without a district sees nothing (checked in code too).
CREATE TABLE app_user_district (
    user_id         bigint NOT NULL REFERENCES app_user ON DELETE CASCADE,
    district_adcode text NOT NULL REFERENCES district,
    PRIMARY KEY (user_id, district_adcode)
);

-- Teams incidents can be assigned to (a district's 城运 team, a city-wide specialist team).
CREATE TABLE team (
    code            text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_-]{1,63}$'),
    name_zh         text NOT NULL,
    name_en         text NOT NULL,
    -- NULL = a city team, which incidents of any district can be assigned to
    district_adcode text REFERENCES district
);

-- Server-side sessions: the browser holds a random id, the database its SHA-256 and everything
-- the session may do is derived from app_user at each request.
CREATE TABLE user_session (
    id_sha256    bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    user_id      bigint NOT NULL REFERENCES app_user ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    ip           text,
    user_agent   text
);
CREATE INDEX user_session_user_idx ON user_session (user_id);

-- Failed logins, by account and by client address, for throttling across workers and restarts.
CREATE TABLE login_failure (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    subject text NOT NULL  -- 'user:<name>' or 'ip:<address>'
);
CREATE INDEX login_failure_subject_idx ON login_failure (subject, at);

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    action          text NOT NULL,
    target          text,
    district_adcode text,
    ip              text,
    detail          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Incident handling (线上线下协同处置) -------------------------------------------------------------

-- 'user:<username>' or 'team:<code>'
ALTER TABLE incident ADD COLUMN assignee text;
ALTER TABLE incident_event ADD COLUMN assignee text;

-- Row-level security -----------------------------------------------------------------------------
-- The web app connects as onescreen_web, which owns nothing, and states in every transaction
-- whom it serves: onescreen.scope = '*' (the city) or a comma list of district adcodes, and
-- onescreen.actor = who may change incidents ('' = nobody). Unset means nothing is visible.

CREATE FUNCTION onescreen_scope_allows(district text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('onescreen.scope', true) = '*'
        OR district = ANY (string_to_array(nullif(current_setting('onescreen.scope', true), ''), ','))
$$;

CREATE FUNCTION onescreen_can_act() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('onescreen.actor', true), '') <> ''
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'onescreen_web') THEN
        CREATE ROLE onescreen_web NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'OneScreen serves the web as role onescreen_web, which this role may not create'
        USING HINT = 'Ask a superuser to run: CREATE ROLE onescreen_web NOLOGIN;';
END
$$;

-- What the web reads: named tables only, so reading partitions (created later by the owner, and
-- without policies of their own) are reachable only through `reading` and its policy.
GRANT USAGE ON SCHEMA public TO onescreen_web;
GRANT SELECT ON app_meta, city_outline, district, street, grid_cell, device_category, device_type,
    device, reading, device_latest, rollup_street_15m, rollup_district_type_1h,
    rollup_district_daily, street_status, cell_status, incident, incident_event, incident_live,
    incident_daily, wall_playlist, display_token,
    app_user_district, team, audit_log
    TO onescreen_web;
-- not the password hash: passwords are checked by the owner's connection
GRANT SELECT (id, username, display_name, role, created_at, password_changed_at, disabled_at)
    ON app_user TO onescreen_web;
GRANT UPDATE (status, acknowledged_at, resolved_at, assignee) ON incident TO onescreen_web;
GRANT INSERT ON incident_event, audit_log TO onescreen_web;
GRANT UPDATE (last_seen_at) ON display_token TO onescreen_web;
GRANT EXECUTE ON FUNCTION onescreen_scope_allows(text), onescreen_can_act() TO onescreen_web;

ALTER TABLE incident_daily ADD COLUMN acknowledged integer NOT NULL DEFAULT 0;
ALTER TABLE incident_daily ADD COLUMN acknowledge_seconds double precision NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION incident_count(row_ incident, sign integer) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO incident_daily AS c
        (day, district_adcode, category_code, severity, opened, resolved, resolve_seconds)
    VALUES (city_day(row_.opened_at), row_.district_adcode, row_.category_code, row_.severity,
            sign, 0, 0)
    ON CONFLICT (day, district_adcode, category_code, severity)
        DO UPDATE SET opened = c.opened + excluded.opened;
    IF row_.acknowledged_at IS NOT NULL THEN
        INSERT INTO incident_daily AS c
            (day, district_adcode, category_code, severity, opened, resolved, resolve_seconds,
             acknowledged, acknowledge_seconds)
        VALUES (city_day(row_.acknowledged_at), row_.district_adcode, row_.category_code,
                row_.severity, 0, 0, 0, sign,
                sign * extract(epoch FROM row_.acknowledged_at - row_.opened_at))
        ON CONFLICT (day, district_adcode, category_code, severity) DO UPDATE SET
            acknowledged = c.acknowledged + excluded.acknowledged,
            acknowledge_seconds = c.acknowledge_seconds + excluded.acknowledge_seconds;
    END IF;
    IF row_.status = 'resolved' THEN
        INSERT INTO incident_daily AS c
            (day, district_adcode, category_code, severity, opened, resolved, resolve_seconds)
        VALUES (city_day(row_.resolved_at), row_.district_adcode, row_.category_code,
                row_.severity, 0, sign,
                sign * extract(epoch FROM row_.resolved_at - row_.opened_at))
        ON CONFLICT (day, district_adcode, category_code, severity) DO UPDATE SET
            resolved = c.resolved + excluded.resolved,
            resolve_seconds = c.resolve_seconds + excluded.resolve_seconds;
    ELSE
        INSERT INTO incident_live AS c
            (street_code, category_code, severity, district_adcode, n)
        VALUES (coalesce(row_.street_code, ''), row_.category_code, row_.severity,
                row_.district_adcode, sign)
        ON CONFLICT (street_code, category_code, severity) DO UPDATE SET n = c.n + excluded.n;
    END IF;
END $$;

-- the trigger runs as the owner (the web role may not write counters), and nobody may call the
-- counting function directly: it would move any district's figures
ALTER FUNCTION incident_counters() SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION incident_count(incident, integer) FROM PUBLIC;

-- the counters so far, with acknowledgements counted the way the function now counts them
UPDATE incident_daily SET acknowledged = 0, acknowledge_seconds = 0;
INSERT INTO incident_daily AS c
    (day, district_adcode, category_code, severity, opened, resolved, resolve_seconds,
     acknowledged, acknowledge_seconds)
SELECT city_day(acknowledged_at), district_adcode, category_code, severity, 0, 0, 0, count(*),
       sum(extract(epoch FROM acknowledged_at - opened_at))
FROM incident WHERE acknowledged_at IS NOT NULL
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, district_adcode, category_code, severity) DO UPDATE SET
    acknowledged = excluded.acknowledged, acknowledge_seconds = excluded.acknowledge_seconds;

ALTER TABLE incident ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE device ENABLE ROW LEVEL SECURITY;
ALTER TABLE reading ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_latest ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup_street_15m ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup_district_type_1h ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup_district_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE street_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE cell_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_live ENABLE ROW LEVEL SECURITY;
ALTER TABLE incident_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;

-- The owner (migrations, ingest, the rules engine, the CLI) is not subject to these policies;
-- each applies to the web role only.
CREATE POLICY web_read ON incident FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_handle ON incident FOR UPDATE TO onescreen_web
    USING (onescreen_scope_allows(district_adcode) AND onescreen_can_act())
    WITH CHECK (onescreen_scope_allows(district_adcode) AND onescreen_can_act());
CREATE POLICY web_read ON incident_event FOR SELECT TO onescreen_web
    USING (EXISTS (SELECT 1 FROM incident i WHERE i.id = incident_id));
CREATE POLICY web_record ON incident_event FOR INSERT TO onescreen_web
    WITH CHECK (onescreen_can_act() AND actor = current_setting('onescreen.actor', true)
                AND EXISTS (SELECT 1 FROM incident i WHERE i.id = incident_id));
CREATE POLICY web_read ON device FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON reading FOR SELECT TO onescreen_web
    USING (current_setting('onescreen.scope', true) = '*'
           OR EXISTS (SELECT 1 FROM device d WHERE d.id = device_id));
CREATE POLICY web_read ON device_latest FOR SELECT TO onescreen_web
    USING (current_setting('onescreen.scope', true) = '*'
           OR EXISTS (SELECT 1 FROM device d WHERE d.id = device_id));
CREATE POLICY web_read ON rollup_street_15m FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON rollup_district_type_1h FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON rollup_district_daily FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON street_status FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON cell_status FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON incident_live FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON incident_daily FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
-- the web role writes the audit trail but reads only its scope's part of it
CREATE POLICY web_read ON audit_log FOR SELECT TO onescreen_web
    USING (current_setting('onescreen.scope', true) = '*'
           OR onescreen_scope_allows(district_adcode));
CREATE POLICY web_write ON audit_log FOR INSERT TO onescreen_web WITH CHECK (true);
