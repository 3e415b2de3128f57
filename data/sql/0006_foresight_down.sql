-- Revision 0006 undone: early-warning rules, incidents and baselines go; counters lose `kind`.
DROP TABLE device_baseline;
REVOKE SELECT ON incident_rule FROM onescreen_web;
DROP INDEX incident_foreseen_by_idx;
ALTER TABLE rule_inbox DROP COLUMN arrived_at;
DELETE FROM incident WHERE kind <> 'alarm';
DELETE FROM incident_live WHERE kind <> 'alarm';
DELETE FROM incident_daily WHERE kind <> 'alarm';
ALTER TABLE incident_live DROP CONSTRAINT incident_live_pkey;
ALTER TABLE incident_live DROP COLUMN kind;
ALTER TABLE incident_live ADD PRIMARY KEY (street_code, category_code, severity);
ALTER TABLE incident_daily DROP CONSTRAINT incident_daily_pkey;
ALTER TABLE incident_daily DROP COLUMN kind;
ALTER TABLE incident_daily ADD PRIMARY KEY (day, district_adcode, category_code, severity);
DELETE FROM incident_event WHERE kind IN ('updated', 'superseded');
ALTER TABLE incident_event DROP CONSTRAINT incident_event_kind_check;
ALTER TABLE incident_event ADD CONSTRAINT incident_event_kind_check CHECK (kind IN
    ('opened', 'acknowledged', 'assigned', 'note', 'resolved', 'reopened', 'escalated'));
DROP INDEX incident_kind_live_idx;
ALTER TABLE incident DROP COLUMN foreseen_by, DROP COLUMN lead_s, DROP COLUMN detail,
    DROP COLUMN expected_at, DROP COLUMN kind;
DELETE FROM incident_rule WHERE kind NOT IN ('threshold', 'offline');
ALTER TABLE incident_rule DROP CONSTRAINT incident_rule_forecast_check,
    DROP CONSTRAINT incident_rule_baseline_check, DROP CONSTRAINT incident_rule_health_check,
    DROP COLUMN horizon_s, DROP COLUMN confidence, DROP COLUMN window_s,
    DROP COLUMN min_points, DROP COLUMN deviation;
ALTER TABLE incident_rule DROP CONSTRAINT incident_rule_kind_check;
ALTER TABLE incident_rule ADD CONSTRAINT incident_rule_kind_check
    CHECK (kind IN ('threshold', 'offline'));
-- incident_count() as revision 0004 left it
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
-- the reading trigger as revision 0002 left it
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
    -- the rules engine sees only what can change an incident: readings outside the normal range,
    -- and every reading of a device that is already in a rule state (so it can clear)
    rules_feed AS (
        INSERT INTO rule_inbox (device_id, ts, value, level, side)
        SELECT b.device_id, b.ts, b.value, b.level, b.side
        FROM batch b, guard g
        WHERE g.ok
          AND (b.level > 0 OR b.device_id IN (SELECT s.device_id FROM rule_state s))
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
        ts = excluded.ts, value = excluded.value, quality = excluded.quality, level = excluded.level
    WHERE excluded.ts >= l.ts;
    RETURN NULL;
END $$;
