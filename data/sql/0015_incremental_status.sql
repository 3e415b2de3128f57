-- The status snapshot from what changed (issue 23): a pass costs the devices whose counted state
-- may have moved, not every device. At 10 million devices the full recount of revisions 0005 and
-- 0014 took 18.8 s, over its 15-s period; this one reads three small sets:
--   * devices whose newest reading changed what they were counted as (device_latest.dirty, set by
--     the reading trigger and the bulk loader when the level moved or the device was counted
--     offline);
--   * devices whose online window may have lapsed (device_latest.recheck_at, written by the pass
--     itself: the reading it counted plus the window; a later reading only pushes the real lapse
--     further, so the pass rechecks, finds it still online and moves the date on);
--   * devices whose own row changed (status, place, type: status_device_change, filled by
--     statement triggers on device).
-- Each device's contribution (its keys and state) is kept in device_counted, so a move is one
-- subtraction and one addition, by street and by cell. count_status() stays as the full recount:
-- the replay rebuild uses it, and the tests hold the two equal under churn.
--
-- Whoever writes device_latest other than through those two sets `dirty` on the rows it changes.
--
-- The ingest hot path keeps its HOT updates: the indexes added to device_latest are on columns
-- only the pass writes (recheck_at, counted) and on `dirty` as a partial index, whose predicate
-- a reading changes only when the device's counted state is stale.

ALTER TABLE device_latest
    -- what the pass last counted from this row: the level while online, -1 offline; NULL never
    ADD COLUMN counted smallint,
    ADD COLUMN dirty boolean NOT NULL DEFAULT true,
    ADD COLUMN recheck_at timestamptz;
CREATE INDEX device_latest_dirty_idx ON device_latest (device_id) WHERE dirty;
CREATE INDEX device_latest_recheck_idx ON device_latest (recheck_at) WHERE recheck_at IS NOT NULL;
-- the offline scan's candidates (ingest.rules_engine): devices counted silent
CREATE INDEX device_latest_silent_idx ON device_latest (device_id) WHERE counted = -1;

-- state: 0 counted in the total only (silent, or not expected to report), 1-3 online at level
-- 0-2, 4 in maintenance. Retired devices are not here.
CREATE TABLE device_counted (
    device_id       bigint PRIMARY KEY,
    street_code     text NOT NULL,
    district_adcode text NOT NULL,
    cell            bigint,
    category_code   text NOT NULL,
    state           smallint NOT NULL CHECK (state BETWEEN 0 AND 4)
);

-- the map's device clusters read the few in maintenance by cell (data/devices.cell_points)
CREATE INDEX device_counted_maintenance_idx ON device_counted (cell) WHERE state = 4;
GRANT SELECT ON device_counted TO onescreen_web;
ALTER TABLE device_counted ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON device_counted FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));

CREATE TABLE status_device_change (device_id bigint NOT NULL);

CREATE OR REPLACE FUNCTION device_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO status_device_change SELECT n.id FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO status_device_change SELECT o.id FROM old_rows o;
    ELSE
        INSERT INTO status_device_change
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.status, n.street_code, n.district_adcode, n.cell, n.type_id)
              IS DISTINCT FROM (o.status, o.street_code, o.district_adcode, o.cell, o.type_id)
        UNION
        -- an id changed: both count as changed
        SELECT o.id FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER device_inserted AFTER INSERT ON device
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION device_changed();
CREATE TRIGGER device_updated AFTER UPDATE ON device
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_changed();
CREATE TRIGGER device_deleted AFTER DELETE ON device
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION device_changed();

-- a device's newest reading removed (only by hand: retention keeps device_latest) counts it anew
CREATE OR REPLACE FUNCTION device_latest_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_device_change SELECT o.device_id FROM old_rows o;
    RETURN NULL;
END $$;
CREATE TRIGGER device_latest_deleted AFTER DELETE ON device_latest
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION device_latest_deleted();

-- a type's category or reporting interval changes how each of its devices counts
CREATE OR REPLACE FUNCTION device_type_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_device_change
    SELECT d.id FROM device d
    JOIN new_rows n ON n.id = d.type_id
    JOIN old_rows o ON o.id = n.id
    WHERE (n.category_code, n.interval_s) IS DISTINCT FROM (o.category_code, o.interval_s);
    RETURN NULL;
END $$;
CREATE TRIGGER device_type_updated AFTER UPDATE ON device_type
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION device_type_changed();

-- how long a device of a type stays online after its newest reading
CREATE OR REPLACE FUNCTION status_window(interval_s integer) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(3 * interval_s, 600) * interval '1 second'
$$;

-- The devices a pass looks at, into the temp table status_candidates: the devices whose row
-- changed, and at most `batch` stale rows and `batch` due rechecks (the soonest due first). A
-- backlog (the jobs stopped for an hour at 10M devices: millions due) is worked off over the
-- next passes, each short, rather than in one that holds ingest off for minutes.
-- `everything`: every device and every device_latest row (the first pass, or a refresh earlier
-- than the last one), ingest held off meanwhile.
CREATE OR REPLACE FUNCTION status_candidates(at timestamptz, everything boolean, batch integer)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DROP TABLE IF EXISTS pg_temp.status_candidates;
    IF everything THEN
        -- taken first, so device writes wait until this pass commits and none is missed
        LOCK TABLE status_device_change IN ACCESS EXCLUSIVE MODE;
        DELETE FROM status_device_change;
        LOCK TABLE device_latest IN SHARE ROW EXCLUSIVE MODE;
        CREATE TEMP TABLE status_candidates ON COMMIT DROP AS
            SELECT id AS device_id FROM device
            UNION SELECT device_id FROM device_latest
            UNION SELECT device_id FROM device_counted;
    ELSE
        CREATE TEMP TABLE status_candidates ON COMMIT DROP AS
            WITH changed AS (DELETE FROM status_device_change RETURNING device_id)
            SELECT device_id FROM changed
            UNION SELECT device_id FROM (
                SELECT device_id FROM device_latest WHERE dirty LIMIT batch) stale
            UNION SELECT device_id FROM (
                SELECT device_id FROM device_latest
                WHERE recheck_at IS NOT NULL AND recheck_at <= status_candidates.at
                ORDER BY recheck_at LIMIT batch) due;
    END IF;
    ALTER TABLE status_candidates ADD PRIMARY KEY (device_id);
    ANALYZE status_candidates;
    SELECT count(*) INTO n FROM status_candidates;
    IF NOT everything THEN
        -- the reading trigger upserts device_latest in device order: lock in that order too, so
        -- the two wait for each other rather than deadlock
        PERFORM 1 FROM device_latest l
        WHERE l.device_id IN (SELECT c.device_id FROM status_candidates c)
        ORDER BY l.device_id FOR UPDATE;
    END IF;
    RETURN n;
END $$;

-- Each candidate's state now beside the one it was counted in (temp table status_moves), and
-- device_latest and device_counted brought up to date.
CREATE OR REPLACE FUNCTION status_moves(at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.status_moves;
    -- plain joins, so a pass over every device hashes and a pass over a few probes keys
    CREATE TEMP TABLE status_moves ON COMMIT DROP AS
    SELECT c.device_id, d.street_code, d.district_adcode, d.cell, t.category_code,
           CASE WHEN d.id IS NULL THEN NULL
                WHEN d.status = 'maintenance' THEN 4
                WHEN d.status = 'active' AND l.ts > at - status_window(t.interval_s)
                    THEN 1 + l.level
                ELSE 0 END::smallint AS state,
           o.street_code AS old_street, o.district_adcode AS old_district, o.cell AS old_cell,
           o.category_code AS old_category, o.state AS old_state,
           l.device_id IS NOT NULL AS has_latest, l.dirty,
           l.counted AS old_counted, l.recheck_at AS old_recheck,
           -- a retired or removed device has no window: counted silent, never rechecked
           CASE WHEN l.ts > at - status_window(t.interval_s) THEN l.level ELSE -1 END::smallint
               AS counted,
           CASE WHEN l.ts > at - status_window(t.interval_s)
                THEN l.ts + status_window(t.interval_s) END AS recheck_at
    FROM status_candidates c
    LEFT JOIN device d ON d.id = c.device_id AND d.status <> 'retired'
    LEFT JOIN device_type t ON t.id = d.type_id
    LEFT JOIN device_latest l ON l.device_id = c.device_id
    LEFT JOIN device_counted o ON o.device_id = c.device_id;

    UPDATE device_latest l
    SET dirty = false, counted = m.counted, recheck_at = m.recheck_at
    FROM status_moves m
    WHERE l.device_id = m.device_id AND m.has_latest
      AND (m.dirty OR (m.old_counted, m.old_recheck) IS DISTINCT FROM (m.counted, m.recheck_at));

    DELETE FROM device_counted o USING status_moves m
    WHERE o.device_id = m.device_id AND m.state IS NULL;
    INSERT INTO device_counted AS o
    SELECT m.device_id, m.street_code, m.district_adcode, m.cell, m.category_code, m.state
    FROM status_moves m
    WHERE m.state IS NOT NULL
      AND (m.street_code, m.district_adcode, m.cell, m.category_code, m.state)
          IS DISTINCT FROM (m.old_street, m.old_district, m.old_cell, m.old_category, m.old_state)
    ON CONFLICT (device_id) DO UPDATE
    SET street_code = excluded.street_code, district_adcode = excluded.district_adcode,
        cell = excluded.cell, category_code = excluded.category_code, state = excluded.state;
END $$;

-- The moves as additions to the counters, by street (temp table street_delta) and by cell
-- (cell_delta): each moved device leaves its old keys and state and joins its new ones.
CREATE OR REPLACE FUNCTION status_deltas() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.status_signed, pg_temp.street_delta, pg_temp.cell_delta;
    CREATE TEMP TABLE status_signed ON COMMIT DROP AS
    SELECT m.old_street AS street_code, m.old_district AS district_adcode, m.old_cell AS cell,
           m.old_category AS category_code, m.old_state AS state, -1 AS sign
    FROM status_moves m
    WHERE m.old_state IS NOT NULL
      AND (m.street_code, m.district_adcode, m.cell, m.category_code, m.state)
          IS DISTINCT FROM (m.old_street, m.old_district, m.old_cell, m.old_category, m.old_state)
    UNION ALL
    SELECT m.street_code, m.district_adcode, m.cell, m.category_code, m.state, 1
    FROM status_moves m
    WHERE m.state IS NOT NULL
      AND (m.street_code, m.district_adcode, m.cell, m.category_code, m.state)
          IS DISTINCT FROM (m.old_street, m.old_district, m.old_cell, m.old_category, m.old_state);
    CREATE TEMP TABLE street_delta ON COMMIT DROP AS
    SELECT * FROM (
        SELECT s.street_code, s.category_code, s.district_adcode,
               sum(s.sign)::integer AS devices_total,
               coalesce(sum(s.sign) FILTER (WHERE s.state BETWEEN 1 AND 3), 0)::integer
                   AS devices_online,
               coalesce(sum(s.sign) FILTER (WHERE s.state = 2), 0)::integer AS devices_warning,
               coalesce(sum(s.sign) FILTER (WHERE s.state = 3), 0)::integer AS devices_alarm,
               coalesce(sum(s.sign) FILTER (WHERE s.state = 4), 0)::integer
                   AS devices_maintenance
        FROM status_signed s
        GROUP BY s.street_code, s.category_code, s.district_adcode
    ) d
    WHERE (d.devices_total, d.devices_online, d.devices_warning, d.devices_alarm,
           d.devices_maintenance) <> (0, 0, 0, 0, 0);
    -- a cell's counters carry the district and street of its centre (grid_cell)
    CREATE TEMP TABLE cell_delta ON COMMIT DROP AS
    SELECT d.*, g.district_adcode, g.street_code FROM (
        SELECT s.cell, s.category_code,
               sum(s.sign)::integer AS devices_total,
               coalesce(sum(s.sign) FILTER (WHERE s.state BETWEEN 1 AND 3), 0)::integer
                   AS devices_online,
               coalesce(sum(s.sign) FILTER (WHERE s.state = 2), 0)::integer AS devices_warning,
               coalesce(sum(s.sign) FILTER (WHERE s.state = 3), 0)::integer AS devices_alarm
        FROM status_signed s
        WHERE s.cell IS NOT NULL
        GROUP BY s.cell, s.category_code
    ) d
    JOIN grid_cell g ON g.cell = d.cell
    WHERE (d.devices_total, d.devices_online, d.devices_warning, d.devices_alarm) <> (0, 0, 0, 0);
END $$;

-- The deltas added to street_status and cell_status; the rows they touched, as they are now,
-- into street_after and cell_after (for history). Rows left with no device are removed.
CREATE OR REPLACE FUNCTION status_apply_deltas() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.street_after, pg_temp.cell_after;
    CREATE TEMP TABLE street_after ON COMMIT DROP AS
    WITH up AS (
        INSERT INTO street_status AS s
        SELECT d.street_code, d.category_code, d.district_adcode, d.devices_total,
               d.devices_online, d.devices_warning, d.devices_alarm, d.devices_maintenance
        FROM street_delta d
        ORDER BY d.street_code, d.category_code
        ON CONFLICT (street_code, category_code) DO UPDATE
        SET district_adcode = excluded.district_adcode,
            devices_total = s.devices_total + excluded.devices_total,
            devices_online = s.devices_online + excluded.devices_online,
            devices_warning = s.devices_warning + excluded.devices_warning,
            devices_alarm = s.devices_alarm + excluded.devices_alarm,
            devices_maintenance = s.devices_maintenance + excluded.devices_maintenance
        RETURNING s.*
    )
    SELECT * FROM up;
    DELETE FROM street_status s USING street_after a
    WHERE s.street_code = a.street_code AND s.category_code = a.category_code
      AND a.devices_total = 0;

    CREATE TEMP TABLE cell_after ON COMMIT DROP AS
    WITH up AS (
        INSERT INTO cell_status AS s
        SELECT d.cell, d.category_code, d.district_adcode, d.street_code, d.devices_total,
               d.devices_online, d.devices_warning, d.devices_alarm
        FROM cell_delta d
        ORDER BY d.cell, d.category_code
        ON CONFLICT (cell, category_code) DO UPDATE
        SET district_adcode = excluded.district_adcode,
            street_code = excluded.street_code,
            devices_total = s.devices_total + excluded.devices_total,
            devices_online = s.devices_online + excluded.devices_online,
            devices_warning = s.devices_warning + excluded.devices_warning,
            devices_alarm = s.devices_alarm + excluded.devices_alarm
        RETURNING s.*
    )
    SELECT * FROM up;
    DELETE FROM cell_status s USING cell_after a
    WHERE s.cell = a.cell AND s.category_code = a.category_code AND a.devices_total = 0;
END $$;

-- The status snapshot, incremental, `batch` stale rows and due rechecks at most (see
-- status_candidates). A refresh earlier than the last one, or the first (nothing counted yet),
-- starts the counters over from every device. (Revision 0014's refresh_status(timestamptz) is
-- replaced: one function, so a call with one argument is not ambiguous.)
DROP FUNCTION refresh_status(timestamptz);
CREATE OR REPLACE FUNCTION refresh_status(at timestamptz DEFAULT now(),
                                          batch integer DEFAULT 250000) RETURNS integer
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    everything boolean;
    full_frame boolean;
    last_frame timestamptz;
    changes integer;
BEGIN
    -- one refresher at a time; readers keep seeing the previous snapshot until commit
    PERFORM pg_advisory_xact_lock(hashtext('onescreen.refresh_status'));
    everything := NOT EXISTS (SELECT 1 FROM device_counted)
        OR at < coalesce((SELECT (m.value #>> '{}')::timestamptz FROM app_meta m
                          WHERE m.key = 'status_as_of'), '-infinity');
    PERFORM status_candidates(at, everything, batch);
    IF everything THEN
        -- from zero: every device is a move from nothing
        TRUNCATE device_counted;
        UPDATE street_status SET devices_total = 0, devices_online = 0, devices_warning = 0,
                                 devices_alarm = 0, devices_maintenance = 0;
        UPDATE cell_status SET devices_total = 0, devices_online = 0, devices_warning = 0,
                               devices_alarm = 0;
    END IF;
    PERFORM status_moves(at);
    PERFORM status_deltas();
    PERFORM status_apply_deltas();
    IF everything THEN
        -- rows no device counts into any more (their zeros go to history below)
        INSERT INTO street_after SELECT s.* FROM street_status s WHERE s.devices_total = 0;
        INSERT INTO cell_after SELECT s.* FROM cell_status s WHERE s.devices_total = 0;
        DELETE FROM street_status WHERE devices_total = 0;
        DELETE FROM cell_status WHERE devices_total = 0;
    END IF;

    -- history for replay: every count in a full frame (the day's first refresh, so a day's
    -- partition replays on its own, or when the changes since the last frame have outgrown
    -- one), otherwise the counts that moved (zeros for a count now gone)
    PERFORM ensure_day_partitions('status_history', at, at);
    PERFORM ensure_day_partitions('cell_status_history', at, at);
    SELECT r.at INTO last_frame FROM status_refresh r
    WHERE r.keyframe AND r.at <= refresh_status.at ORDER BY r.at DESC LIMIT 1;
    full_frame := everything OR last_frame IS NULL
        OR last_frame < city_midnight(city_day(refresh_status.at))
        OR (SELECT coalesce(sum(r.changes), 0) FROM status_refresh r
            WHERE r.at > last_frame AND r.at <= refresh_status.at)
           >= (SELECT count(*) FROM street_status) + (SELECT count(*) FROM cell_status);
    INSERT INTO status_history
    SELECT at, a.* FROM street_after a
    WHERE NOT full_frame OR a.devices_total = 0
    UNION ALL
    SELECT at, s.* FROM street_status s WHERE full_frame;
    INSERT INTO cell_status_history
    SELECT at, a.* FROM cell_after a
    WHERE NOT full_frame OR a.devices_total = 0
    UNION ALL
    SELECT at, s.* FROM cell_status s WHERE full_frame;
    changes := (SELECT count(*) FROM street_after) + (SELECT count(*) FROM cell_after);
    INSERT INTO status_refresh (at, keyframe, changes)
    VALUES (refresh_status.at, full_frame, CASE WHEN full_frame THEN 0 ELSE changes END)
    ON CONFLICT ON CONSTRAINT status_refresh_pkey
    DO UPDATE SET keyframe = status_refresh.keyframe OR excluded.keyframe,
                  changes = status_refresh.changes + excluded.changes;

    INSERT INTO app_meta (key, value, updated_at)
    VALUES ('status_as_of', to_jsonb(at), now())
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
    RETURN (SELECT coalesce(sum(s.devices_total), 0)::integer FROM street_status s);
END $$;

-- Incidents opened per 15 minutes, by place, category, severity and kind: the incident timeline
-- reads these counters (and the raw incidents of its window's two partial quarter-hours), not
-- every incident of its window. Kept by triggers on incident; a severity raised later moves its
-- incident, so the timeline keeps stacking by the severity incidents have now.
CREATE TABLE incident_opened_15m (
    bucket          timestamptz NOT NULL,
    district_adcode text NOT NULL,
    street_code     text NOT NULL,  -- '' for an incident of no street
    category_code   text NOT NULL,
    severity        text NOT NULL,
    kind            text NOT NULL,
    n               integer NOT NULL,
    PRIMARY KEY (bucket, district_adcode, street_code, category_code, severity, kind)
);
CREATE INDEX incident_opened_15m_district_idx ON incident_opened_15m (district_adcode, bucket);
INSERT INTO incident_opened_15m
SELECT bucket_15m(opened_at), district_adcode, coalesce(street_code, ''), category_code, severity,
       kind, count(*)
FROM incident GROUP BY 1, 2, 3, 4, 5, 6;
GRANT SELECT ON incident_opened_15m TO onescreen_web;
ALTER TABLE incident_opened_15m ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON incident_opened_15m FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));

CREATE OR REPLACE FUNCTION incident_opened_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        -- an update that moved an incident between counters (rare: a raised severity)
        INSERT INTO incident_opened_15m AS r
        VALUES (bucket_15m(OLD.opened_at), OLD.district_adcode, coalesce(OLD.street_code, ''),
                OLD.category_code, OLD.severity, OLD.kind, -1),
               (bucket_15m(NEW.opened_at), NEW.district_adcode, coalesce(NEW.street_code, ''),
                NEW.category_code, NEW.severity, NEW.kind, 1)
        ON CONFLICT (bucket, district_adcode, street_code, category_code, severity, kind)
        DO UPDATE SET n = r.n + excluded.n;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO incident_opened_15m AS r
        SELECT bucket_15m(i.opened_at), i.district_adcode, coalesce(i.street_code, ''),
               i.category_code, i.severity, i.kind, count(*)
        FROM new_rows i GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (bucket, district_adcode, street_code, category_code, severity, kind)
        DO UPDATE SET n = r.n + excluded.n;
    ELSE
        INSERT INTO incident_opened_15m AS r
        SELECT bucket_15m(i.opened_at), i.district_adcode, coalesce(i.street_code, ''),
               i.category_code, i.severity, i.kind, -count(*)
        FROM old_rows i GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (bucket, district_adcode, street_code, category_code, severity, kind)
        DO UPDATE SET n = r.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER incident_opened_inserted AFTER INSERT ON incident
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_opened_counted();
CREATE TRIGGER incident_opened_deleted AFTER DELETE ON incident
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_opened_counted();
CREATE TRIGGER incident_opened_moved
    AFTER UPDATE OF opened_at, district_adcode, street_code, category_code, severity, kind
    ON incident FOR EACH ROW
    WHEN ((OLD.opened_at, OLD.district_adcode, OLD.street_code, OLD.category_code, OLD.severity,
           OLD.kind)
          IS DISTINCT FROM
          (NEW.opened_at, NEW.district_adcode, NEW.street_code, NEW.category_code, NEW.severity,
           NEW.kind))
    EXECUTE FUNCTION incident_opened_counted();

-- The reading insert trigger as revision 0006 wrote it (0006_foresight.sql), its device_latest
-- upsert now also marking the rows the status pass must look at again.
CREATE OR REPLACE FUNCTION reading_after_insert() RETURNS trigger
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
BEGIN
    WITH id_range AS (
        SELECT min(device_id) AS low, max(device_id) AS high, count(*) AS n,
               -- live batches name scattered devices: those are looked up by key instead
               max(device_id) - min(device_id) > 8 * count(*) AS scattered
        FROM new_readings
    ),
    -- bulk batches are id-contiguous: the join hashes the devices of the batch's id range, not
    -- the whole table; live batches (devices from all over the city) fetch theirs by key
    batch_devices AS (
        -- (sub-selects of id_range are evaluated once, before either branch scans anything)
        SELECT d.id, d.district_adcode, d.street_code, d.type_id
        FROM device d
        WHERE NOT (SELECT scattered FROM id_range)
          AND d.id BETWEEN (SELECT low FROM id_range) AND (SELECT high FROM id_range)
        UNION ALL
        -- unnest hides the key count from the planner (it assumes a few), so it probes the
        -- primary key per device instead of scanning the whole device table
        SELECT d.id, d.district_adcode, d.street_code, d.type_id
        FROM unnest(ARRAY(SELECT DISTINCT device_id FROM new_readings)) AS k(id)
        JOIN device d ON d.id = k.id
        WHERE (SELECT scattered FROM id_range)
    ),
    batch AS MATERIALIZED (
        SELECT n.device_id, n.ts, n.value, n.quality,
               d.district_adcode, d.street_code, d.type_id, t.category_code,
               reading_level(n.value, t.normal_min, t.normal_max, t.alarm_min, t.alarm_max) AS level,
               CASE WHEN n.value > t.normal_max THEN 1 WHEN n.value < t.normal_min THEN -1
                    ELSE 0 END::smallint AS side
        FROM new_readings n
        LEFT JOIN batch_devices d ON d.id = n.device_id
        LEFT JOIN device_type t ON t.id = d.type_id
    ),
    guard AS (
        SELECT assert_known_devices(count(*) FILTER (WHERE type_id IS NULL)) AS ok FROM batch
    ),
    by_street AS MATERIALIZED (
        SELECT bucket_15m(b.ts) AS bucket, b.street_code, b.category_code, b.district_adcode,
               count(*) AS n,
               count(*) FILTER (WHERE b.level = 1) AS n_warning,
               count(*) FILTER (WHERE b.level = 2) AS n_alarm,
               count(*) FILTER (WHERE b.quality > 0) AS n_bad
        FROM batch b, guard g
        WHERE g.ok
        GROUP BY 1, 2, 3, 4
    ),
    street_15m AS (
        INSERT INTO rollup_street_15m AS r
            (bucket, street_code, category_code, district_adcode,
             n_readings, n_warning, n_alarm, n_bad_quality)
        SELECT bucket, street_code, category_code, district_adcode, n, n_warning, n_alarm, n_bad
        FROM by_street
        ORDER BY bucket, street_code, category_code
        ON CONFLICT (bucket, street_code, category_code) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm,
            n_bad_quality = r.n_bad_quality + excluded.n_bad_quality
    ),
    district_type_1h AS (
        INSERT INTO rollup_district_type_1h AS r
            (bucket, district_adcode, type_id, n_readings, n_warning, n_alarm,
             value_sum, value_min, value_max)
        SELECT bucket_1h(b.ts), b.district_adcode, b.type_id,
               count(*), count(*) FILTER (WHERE b.level = 1), count(*) FILTER (WHERE b.level = 2),
               sum(b.value), min(b.value), max(b.value)
        FROM batch b, guard g
        WHERE g.ok
        GROUP BY 1, 2, 3
        ORDER BY 2, 3, 1
        ON CONFLICT (district_adcode, type_id, bucket) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm,
            value_sum = r.value_sum + excluded.value_sum,
            value_min = least(r.value_min, excluded.value_min),
            value_max = greatest(r.value_max, excluded.value_max)
    ),
    -- every live reading reaches the rules: a forecast needs the readings inside the normal
    -- range that lead up to a breach, and the health checks need all of them
    rules_feed AS (
        INSERT INTO rule_inbox (device_id, ts, value, level, side)
        SELECT b.device_id, b.ts, b.value, b.level, b.side
        FROM batch b, guard g
        WHERE g.ok
    ),
    district_daily AS (
        INSERT INTO rollup_district_daily AS r
            (day, district_adcode, category_code, n_readings, n_warning, n_alarm)
        SELECT city_day(bucket), district_adcode, category_code,
               sum(n), sum(n_warning), sum(n_alarm)
        FROM by_street
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (day, district_adcode, category_code) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm
    )
    INSERT INTO device_latest AS l (device_id, ts, value, quality, level)
    SELECT DISTINCT ON (b.device_id) b.device_id, b.ts, b.value, b.quality, b.level
    FROM batch b, guard g
    WHERE g.ok
    ORDER BY b.device_id, b.ts DESC
    ON CONFLICT (device_id) DO UPDATE SET
        ts = excluded.ts, value = excluded.value, quality = excluded.quality, level = excluded.level,
        -- stale for the status pass when the level moved or the device was counted silent
        dirty = l.dirty OR l.counted IS DISTINCT FROM excluded.level
    WHERE excluded.ts >= l.ts;
    RETURN NULL;
END $$;
