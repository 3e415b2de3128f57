-- Revision 0014: history for replay (回放). What the screens show at any minute of the retention
-- window can be rebuilt: the status snapshots' changes (street and cell counts), the refreshes
-- that made them, units' tracks, and the severity an incident had after each of its events.
-- Transitions, not snapshots: a status row is written only when its counts moved, except in a
-- full frame (every count), written at the first refresh of each city day and whenever the changes
-- since the last frame have outgrown one: reading an instant then reads its frame and at most as
-- many changes again, and a calm day costs one frame and its few changes.

-- Day partitions for any table partitioned by range on a timestamptz: named <table>_pYYYYMMDD,
-- one per Shanghai day, as reading's always were.
CREATE OR REPLACE FUNCTION ensure_day_partitions(parent regclass, from_ts timestamptz,
                                                 to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created integer := 0;
    part text;
BEGIN
    IF to_ts < from_ts THEN
        RAISE EXCEPTION 'ensure_day_partitions: to_ts % is before from_ts %', to_ts, from_ts;
    END IF;
    IF city_day(to_ts) - city_day(from_ts) > 3660 THEN
        RAISE EXCEPTION 'ensure_day_partitions: refusing to create more than 10 years of partitions';
    END IF;
    -- most calls find their partitions: no lock for them
    IF to_regclass(parent::text || '_p' || to_char(city_day(from_ts), 'YYYYMMDD')) IS NOT NULL
       AND to_regclass(parent::text || '_p' || to_char(city_day(to_ts), 'YYYYMMDD')) IS NOT NULL
       AND city_day(to_ts) - city_day(from_ts) <= 1 THEN
        RETURN 0;
    END IF;
    -- concurrent writers would otherwise race to create the same partition
    PERFORM pg_advisory_xact_lock(hashtext('onescreen.partitions.' || parent::text));
    FOR d IN SELECT generate_series(city_day(from_ts), city_day(to_ts), interval '1 day')::date LOOP
        part := parent::text || '_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                part, parent, city_midnight(d), city_midnight(d + 1));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION drop_day_partitions_before(parent regclass, keep_from date)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    prefix integer := char_length(parent::text) + 3;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent
          -- the name is read as a date only once it is known to be one (AND has no order)
          AND CASE WHEN c.relname ~ ('^' || parent::text || '_p[0-9]{8}$')
                   THEN to_date(substr(c.relname, prefix), 'YYYYMMDD') < keep_from
                   ELSE false END
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        RETURN NEXT part.relname;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION ensure_reading_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE sql AS $$ SELECT ensure_day_partitions('reading', from_ts, to_ts) $$;

CREATE OR REPLACE FUNCTION drop_reading_partitions_before(keep_from date)
RETURNS SETOF text
LANGUAGE sql AS $$ SELECT drop_day_partitions_before('reading', keep_from) $$;

-- Status history ----------------------------------------------------------------------------------
CREATE TABLE status_refresh (
    at       timestamptz PRIMARY KEY,
    keyframe boolean NOT NULL,
    -- history rows this refresh wrote as changes (0 for a full frame)
    changes  integer NOT NULL DEFAULT 0
);

CREATE TABLE status_history (
    at                  timestamptz NOT NULL,
    street_code         text NOT NULL,
    category_code       text NOT NULL,
    district_adcode     text NOT NULL,
    devices_total       integer NOT NULL,
    devices_online      integer NOT NULL,
    devices_warning     integer NOT NULL,
    devices_alarm       integer NOT NULL,
    devices_maintenance integer NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX status_history_at_idx ON status_history (at);

CREATE TABLE cell_status_history (
    at              timestamptz NOT NULL,
    cell            bigint NOT NULL,
    category_code   text NOT NULL,
    district_adcode text NOT NULL,
    street_code     text NOT NULL,
    devices_total   integer NOT NULL,
    devices_online  integer NOT NULL,
    devices_warning integer NOT NULL,
    devices_alarm   integer NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX cell_status_history_district_idx ON cell_status_history (district_adcode, at);

-- Units' tracks: every fix that moved a unit (only the newest was kept before) ---------------------
CREATE TABLE resource_track (
    resource_id bigint NOT NULL,
    at          timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX resource_track_idx ON resource_track (resource_id, at);

-- An incident's severity after each event that sets it (opened, escalated), so the past shows the
-- severity it had then; filled from the incident as the event is written.
ALTER TABLE incident_event ADD COLUMN severity text;
-- and the event a 'grouped' line put it in (events merge later: their members move)
ALTER TABLE incident_event ADD COLUMN group_id bigint;
CREATE OR REPLACE FUNCTION incident_event_severity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('opened', 'escalated') AND NEW.severity IS NULL THEN
        SELECT i.severity INTO NEW.severity FROM incident i WHERE i.id = NEW.incident_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER incident_event_severity BEFORE INSERT ON incident_event
    FOR EACH ROW EXECUTE FUNCTION incident_event_severity();

-- The incidents live at an instant, with the status and severity they had then.
CREATE OR REPLACE FUNCTION incidents_at(at timestamptz)
RETURNS TABLE (id bigint, status text, severity text)
LANGUAGE sql STABLE AS $$
    SELECT i.id, s.to_status, coalesce(v.severity, i.severity)
    FROM incident i
    CROSS JOIN LATERAL (
        SELECT e.to_status FROM incident_event e
        WHERE e.incident_id = i.id AND e.at <= incidents_at.at AND e.to_status IS NOT NULL
        ORDER BY e.at DESC, e.id DESC LIMIT 1
    ) s
    LEFT JOIN LATERAL (
        SELECT e.severity FROM incident_event e
        WHERE e.incident_id = i.id AND e.at <= incidents_at.at AND e.severity IS NOT NULL
        ORDER BY e.at DESC, e.id DESC LIMIT 1
    ) v ON true
    WHERE i.opened_at <= incidents_at.at
      AND (i.status <> 'resolved' OR i.resolved_at > incidents_at.at)
      AND s.to_status <> 'resolved'
$$;

-- One incident as it stood at an instant (opened by then): its status, severity, when it had been
-- acknowledged and resolved, and its event if it had been grouped by then. Its words (title, rule)
-- are today's: an escalation rewrites them and they are not kept.
CREATE OR REPLACE FUNCTION incident_then(i incident, at timestamptz) RETURNS incident
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r incident := i;
    next_group bigint;
    hop integer;
BEGIN
    SELECT e.to_status INTO r.status FROM incident_event e
    WHERE e.incident_id = i.id AND e.at <= incident_then.at AND e.to_status IS NOT NULL
    ORDER BY e.at DESC, e.id DESC LIMIT 1;
    r.status := coalesce(r.status, 'open');
    r.severity := coalesce(
        (SELECT e.severity FROM incident_event e
         WHERE e.incident_id = i.id AND e.at <= incident_then.at AND e.severity IS NOT NULL
         ORDER BY e.at DESC, e.id DESC LIMIT 1),
        i.severity);
    IF i.acknowledged_at > incident_then.at THEN
        r.acknowledged_at := NULL;
    END IF;
    r.resolved_at := CASE WHEN r.status = 'resolved' THEN
        (SELECT max(e.at) FROM incident_event e
         WHERE e.incident_id = i.id AND e.kind = 'resolved' AND e.at <= incident_then.at) END;
    SELECT e.group_id, e.at INTO r.group_id, r.grouped_at FROM incident_event e
    WHERE e.incident_id = i.id AND e.kind = 'grouped' AND e.at <= incident_then.at
      AND e.group_id IS NOT NULL
    ORDER BY e.at DESC, e.id DESC LIMIT 1;
    IF NOT FOUND THEN
        -- grouped before its event lines said which event: the one it is in now
        IF i.grouped_at IS NULL OR i.grouped_at > incident_then.at THEN
            r.group_id := NULL;
            r.grouped_at := NULL;
        ELSE
            r.group_id := i.group_id;
            r.grouped_at := i.grouped_at;
        END IF;
        RETURN r;
    END IF;
    -- the event it had joined, or the one that had absorbed it by then
    FOR hop IN 1..20 LOOP
        SELECT g.merged_into INTO next_group FROM incident_group g
        WHERE g.id = r.group_id AND g.status = 'merged' AND g.closed_at <= incident_then.at;
        EXIT WHEN next_group IS NULL;
        r.group_id := next_group;
        next_group := NULL;
    END LOOP;
    RETURN r;
END $$;

-- The event an event's members are in today (it, or the one it merged into, and so on).
CREATE OR REPLACE FUNCTION group_final(group_id bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(id, depth) AS (
        SELECT group_final.group_id, 0
        UNION ALL
        SELECT g.merged_into, c.depth + 1 FROM chain c JOIN incident_group g ON g.id = c.id
        WHERE g.status = 'merged' AND g.merged_into IS NOT NULL AND c.depth < 20
    )
    SELECT id FROM chain ORDER BY depth DESC LIMIT 1
$$;

-- One unit as it stood at an instant: its status (from its history), the job it was on, and where
-- its last fix by then put it (at home before its first).
CREATE OR REPLACE FUNCTION resource_then(r resource, at timestamptz) RETURNS resource
LANGUAGE plpgsql STABLE AS $$
DECLARE
    u resource := r;
    e resource_event;
BEGIN
    SELECT * INTO e FROM resource_event x
    WHERE x.resource_id = r.id AND x.at <= resource_then.at
    ORDER BY x.at DESC, x.id DESC LIMIT 1;
    IF FOUND THEN
        u.status := e.to_status;
    ELSE
        -- nothing had happened to it yet: as its first change found it
        u.status := coalesce(
            (SELECT x.from_status FROM resource_event x WHERE x.resource_id = r.id
             ORDER BY x.at, x.id LIMIT 1),
            r.status);
    END IF;
    IF u.status IN ('dispatched', 'en_route', 'on_site') THEN
        SELECT * INTO e FROM resource_event x
        WHERE x.resource_id = r.id AND x.at <= resource_then.at AND x.kind = 'dispatched'
        ORDER BY x.at DESC, x.id DESC LIMIT 1;
        u.incident_id := e.incident_id;
        u.task_id := e.task_id;
        u.dispatched_at := e.at;
        u.eta_at := e.at + coalesce(e.eta_s, 0) * interval '1 second';
        u.target := CASE WHEN r.dispatched_at = e.at THEN r.target
                         ELSE (SELECT i.geom FROM incident i WHERE i.id = e.incident_id) END;
    ELSE
        u.incident_id := NULL;
        u.task_id := NULL;
        u.target := NULL;
        u.eta_at := NULL;
    END IF;
    u.geom := coalesce(
        (SELECT t.geom FROM resource_track t
         WHERE t.resource_id = r.id AND t.at <= resource_then.at
         ORDER BY t.at DESC LIMIT 1),
        CASE WHEN EXISTS (SELECT 1 FROM resource_track t WHERE t.resource_id = r.id)
             THEN r.home ELSE r.geom END);
    RETURN u;
END $$;

-- The counters as they stood at an instant: what street_status, cell_status and incident_live held
-- then (a refresh's full frame, and the changes written after it up to the instant).
CREATE OR REPLACE FUNCTION status_frame_at(at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT max(r.at) FROM status_refresh r WHERE r.keyframe AND r.at <= status_frame_at.at
$$;

CREATE OR REPLACE FUNCTION street_status_at(at timestamptz) RETURNS SETOF street_status
LANGUAGE sql STABLE AS $$
    SELECT h.street_code, h.category_code, h.district_adcode, h.devices_total, h.devices_online,
           h.devices_warning, h.devices_alarm, h.devices_maintenance
    FROM (
        SELECT DISTINCT ON (s.street_code, s.category_code) s.*
        FROM status_history s
        WHERE s.at >= status_frame_at(street_status_at.at) AND s.at <= street_status_at.at
        ORDER BY s.street_code, s.category_code, s.at DESC
    ) h
    WHERE h.devices_total > 0
$$;

CREATE OR REPLACE FUNCTION cell_status_at(at timestamptz, district text) RETURNS SETOF cell_status
LANGUAGE sql STABLE AS $$
    SELECT h.cell, h.category_code, h.district_adcode, h.street_code, h.devices_total,
           h.devices_online, h.devices_warning, h.devices_alarm
    FROM (
        SELECT DISTINCT ON (s.cell, s.category_code) s.*
        FROM cell_status_history s
        WHERE s.district_adcode = cell_status_at.district
          AND s.at >= status_frame_at(cell_status_at.at) AND s.at <= cell_status_at.at
        ORDER BY s.cell, s.category_code, s.at DESC
    ) h
    WHERE h.devices_total > 0
$$;

CREATE OR REPLACE FUNCTION incident_live_at(at timestamptz) RETURNS SETOF incident_live
LANGUAGE sql STABLE AS $$
    SELECT coalesce(i.street_code, ''), i.category_code, a.severity, i.district_adcode,
           count(*)::integer, i.kind
    FROM incidents_at(incident_live_at.at) a
    JOIN incident i ON i.id = a.id
    GROUP BY coalesce(i.street_code, ''), i.category_code, a.severity, i.district_adcode, i.kind
$$;

-- Every device counted by street × category and by cell × category at `at`, into the temp table
-- status_counts: online and at the level of its newest reading, from device_latest (the live
-- refresh) or, `from_readings`, from the readings themselves (a past rebuilt). One statement
-- either way, its device source chosen as text: a lateral probe per device would cost the live
-- refresh, which reads device_latest in one scan.
CREATE OR REPLACE FUNCTION count_status(at timestamptz, from_readings boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- a second call in one transaction finds the first one's table
    DROP TABLE IF EXISTS pg_temp.status_counts;
    EXECUTE format($count$
        CREATE TEMP TABLE status_counts ON COMMIT DROP AS
        SELECT grouping(s.cell) = 0 AS by_cell, s.street_code, s.district_adcode, s.cell,
               s.category_code,
               count(*)::integer AS devices_total,
               (count(*) FILTER (WHERE s.online))::integer AS devices_online,
               (count(*) FILTER (WHERE s.online AND s.level = 1))::integer AS devices_warning,
               (count(*) FILTER (WHERE s.online AND s.level = 2))::integer AS devices_alarm,
               (count(*) FILTER (WHERE s.in_maintenance))::integer AS devices_maintenance
        FROM (
            SELECT d.street_code, d.district_adcode, d.cell, t.category_code,
                   d.status = 'maintenance' AS in_maintenance,
                   (d.status = 'active' AND l.ts IS NOT NULL
                    AND l.ts > $1 - greatest(3 * t.interval_s, 600) * interval '1 second')
                       AS online,
                   coalesce(l.level, 0) AS level
            FROM device d
            JOIN device_type t ON t.id = d.type_id
            LEFT JOIN %s
            WHERE d.status <> 'retired'
        ) s
        GROUP BY GROUPING SETS ((s.street_code, s.district_adcode, s.category_code),
                                (s.cell, s.category_code))
    $count$,
    -- from the readings, only within the online window: an older one counts the device offline
    -- either way, as device_latest's would
    CASE WHEN from_readings THEN
        'LATERAL (SELECT r.ts, reading_level(r.value, t.normal_min, t.normal_max, t.alarm_min,'
        ' t.alarm_max) AS level FROM reading r WHERE r.device_id = d.id AND r.ts <= $1'
        ' AND r.ts > $1 - greatest(3 * t.interval_s, 600) * interval ''1 second'''
        ' ORDER BY r.ts DESC LIMIT 1) l ON true'
    ELSE
        'device_latest l ON l.device_id = d.id'
    END) USING at;
END $$;

-- A past's status rebuilt from its readings: a full frame at `at`, each device online and at the
-- level its newest reading by then says. The seed writes one an hour over the day it generates,
-- so a new city's day replays with its devices as they were (the live refresh does the rest).
CREATE OR REPLACE FUNCTION status_frame_from_readings(at timestamptz) RETURNS integer
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    devices integer;
BEGIN
    PERFORM ensure_day_partitions('status_history', at, at);
    PERFORM ensure_day_partitions('cell_status_history', at, at);
    PERFORM count_status(at, true);
    INSERT INTO status_history
    SELECT status_frame_from_readings.at, c.street_code, c.category_code, c.district_adcode,
           c.devices_total, c.devices_online, c.devices_warning, c.devices_alarm,
           c.devices_maintenance
    FROM status_counts c WHERE NOT c.by_cell;
    INSERT INTO cell_status_history
    SELECT status_frame_from_readings.at, c.cell, c.category_code, g.district_adcode,
           g.street_code, c.devices_total, c.devices_online, c.devices_warning, c.devices_alarm
    FROM status_counts c JOIN grid_cell g ON g.cell = c.cell
    WHERE c.by_cell;
    INSERT INTO status_refresh (at, keyframe, changes)
    VALUES (status_frame_from_readings.at, true, 0)
    ON CONFLICT ON CONSTRAINT status_refresh_pkey DO UPDATE SET keyframe = true;
    SELECT coalesce(sum(c.devices_total), 0) INTO devices FROM status_counts c WHERE NOT c.by_cell;
    RETURN devices;
END $$;

GRANT SELECT ON status_refresh, status_history, cell_status_history, resource_track
    TO onescreen_web;
GRANT EXECUTE ON FUNCTION incidents_at(timestamptz), incident_then(incident, timestamptz),
    resource_then(resource, timestamptz), group_final(bigint),
    status_frame_at(timestamptz),
    street_status_at(timestamptz), cell_status_at(timestamptz, text),
    incident_live_at(timestamptz) TO onescreen_web;
ALTER TABLE status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE cell_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE resource_track ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON status_history FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON cell_status_history FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));
CREATE POLICY web_read ON resource_track FOR SELECT TO onescreen_web
    USING (EXISTS (SELECT 1 FROM resource r WHERE r.id = resource_id));

-- The status snapshot, as revision 0005 made it, now also writing its history ---------------------
CREATE OR REPLACE FUNCTION refresh_status(at timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    devices integer;
    full_frame boolean;
    last_frame timestamptz;
    streets_written integer;
    cells_written integer;
BEGIN
    -- one refresher at a time; readers keep seeing the previous snapshot until commit
    PERFORM pg_advisory_xact_lock(hashtext('onescreen.refresh_status'));
    -- a second call in one transaction finds the first one's tables
    DROP TABLE IF EXISTS pg_temp.cell_counts;
    PERFORM count_status(at, false);
    SELECT coalesce(sum(c.devices_total), 0) INTO devices FROM status_counts c WHERE NOT c.by_cell;

    -- history for replay: every count in a full frame (the day's first refresh, so a day's
    -- partition replays on its own, or when the changes since the last frame have outgrown
    -- one), otherwise the counts that moved
    PERFORM ensure_day_partitions('status_history', at, at);
    PERFORM ensure_day_partitions('cell_status_history', at, at);
    SELECT r.at INTO last_frame FROM status_refresh r
    WHERE r.keyframe AND r.at <= refresh_status.at ORDER BY r.at DESC LIMIT 1;
    full_frame := last_frame IS NULL
        OR last_frame < city_midnight(city_day(refresh_status.at))
        OR (SELECT coalesce(sum(r.changes), 0) FROM status_refresh r
            WHERE r.at > last_frame AND r.at <= refresh_status.at)
           >= (SELECT count(*) FROM street_status) + (SELECT count(*) FROM cell_status);
    INSERT INTO status_history
    SELECT at, c.street_code, c.category_code, c.district_adcode, c.devices_total,
           c.devices_online, c.devices_warning, c.devices_alarm, c.devices_maintenance
    FROM status_counts c
    LEFT JOIN street_status s ON s.street_code = c.street_code AND s.category_code = c.category_code
    WHERE NOT c.by_cell
      AND (full_frame OR s.street_code IS NULL
           OR (s.district_adcode, s.devices_total, s.devices_online, s.devices_warning,
               s.devices_alarm, s.devices_maintenance)
              IS DISTINCT FROM
              (c.district_adcode, c.devices_total, c.devices_online, c.devices_warning,
               c.devices_alarm, c.devices_maintenance))
    UNION ALL
    -- a street and category without devices any more: written as zeros, so it replays as gone
    SELECT at, s.street_code, s.category_code, s.district_adcode, 0, 0, 0, 0, 0
    FROM street_status s
    WHERE NOT EXISTS (
        SELECT 1 FROM status_counts c
        WHERE NOT c.by_cell AND c.street_code = s.street_code AND c.category_code = s.category_code
    );
    GET DIAGNOSTICS streets_written = ROW_COUNT;

    DELETE FROM street_status s
    WHERE NOT EXISTS (
        SELECT 1 FROM status_counts c
        WHERE NOT c.by_cell AND c.street_code = s.street_code
          AND c.category_code = s.category_code
    );
    INSERT INTO street_status AS s
    SELECT c.street_code, c.category_code, c.district_adcode, c.devices_total, c.devices_online,
           c.devices_warning, c.devices_alarm, c.devices_maintenance
    FROM status_counts c
    WHERE NOT c.by_cell
    ON CONFLICT (street_code, category_code) DO UPDATE
    SET district_adcode = excluded.district_adcode,
        devices_total = excluded.devices_total,
        devices_online = excluded.devices_online,
        devices_warning = excluded.devices_warning,
        devices_alarm = excluded.devices_alarm,
        devices_maintenance = excluded.devices_maintenance
    WHERE (s.district_adcode, s.devices_total, s.devices_online, s.devices_warning,
           s.devices_alarm, s.devices_maintenance)
          IS DISTINCT FROM
          (excluded.district_adcode, excluded.devices_total, excluded.devices_online,
           excluded.devices_warning, excluded.devices_alarm, excluded.devices_maintenance);

    -- a cell belongs to the district and street of its centre, whatever its devices' addresses
    CREATE TEMP TABLE cell_counts ON COMMIT DROP AS
        SELECT c.cell, c.category_code, g.district_adcode, g.street_code, c.devices_total,
               c.devices_online, c.devices_warning, c.devices_alarm
        FROM status_counts c
        JOIN grid_cell g ON g.cell = c.cell
        WHERE c.by_cell;
    INSERT INTO cell_status_history
    SELECT at, c.cell, c.category_code, c.district_adcode, c.street_code, c.devices_total,
           c.devices_online, c.devices_warning, c.devices_alarm
    FROM cell_counts c
    LEFT JOIN cell_status s ON s.cell = c.cell AND s.category_code = c.category_code
    WHERE full_frame OR s.cell IS NULL
       OR (s.district_adcode, s.street_code, s.devices_total, s.devices_online,
           s.devices_warning, s.devices_alarm)
          IS DISTINCT FROM
          (c.district_adcode, c.street_code, c.devices_total, c.devices_online,
           c.devices_warning, c.devices_alarm)
    UNION ALL
    SELECT at, s.cell, s.category_code, s.district_adcode, s.street_code, 0, 0, 0, 0
    FROM cell_status s
    WHERE NOT EXISTS (
        SELECT 1 FROM cell_counts c WHERE c.cell = s.cell AND c.category_code = s.category_code
    );
    GET DIAGNOSTICS cells_written = ROW_COUNT;
    INSERT INTO status_refresh (at, keyframe, changes)
    VALUES (refresh_status.at, full_frame,
            CASE WHEN full_frame THEN 0 ELSE streets_written + cells_written END)
    ON CONFLICT ON CONSTRAINT status_refresh_pkey
    DO UPDATE SET keyframe = status_refresh.keyframe OR excluded.keyframe,
                  changes = status_refresh.changes + excluded.changes;

    DELETE FROM cell_status s
    WHERE NOT EXISTS (
        SELECT 1 FROM cell_counts c WHERE c.cell = s.cell AND c.category_code = s.category_code
    );
    -- most cells keep their counts from one refresh to the next: rewrite only those that moved.
    -- Not an upsert as for streets: over ~107,000 cells at seed scale one join beat a conflict
    -- probe per row (measured: the whole refresh ~1.7 s against 1.8-2.3 s as an upsert)
    UPDATE cell_status s
    SET district_adcode = c.district_adcode,
        street_code = c.street_code,
        devices_total = c.devices_total,
        devices_online = c.devices_online,
        devices_warning = c.devices_warning,
        devices_alarm = c.devices_alarm
    FROM cell_counts c
    WHERE c.cell = s.cell AND c.category_code = s.category_code
      AND (s.district_adcode, s.street_code, s.devices_total, s.devices_online,
           s.devices_warning, s.devices_alarm)
          IS DISTINCT FROM
          (c.district_adcode, c.street_code, c.devices_total, c.devices_online,
           c.devices_warning, c.devices_alarm);
    INSERT INTO cell_status
    SELECT c.cell, c.category_code, c.district_adcode, c.street_code, c.devices_total,
           c.devices_online, c.devices_warning, c.devices_alarm
    FROM cell_counts c
    WHERE NOT EXISTS (
        SELECT 1 FROM cell_status s WHERE s.cell = c.cell AND s.category_code = c.category_code
    );

    INSERT INTO app_meta (key, value, updated_at)
    VALUES ('status_as_of', to_jsonb(at), now())
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
    RETURN devices;
END $$;
