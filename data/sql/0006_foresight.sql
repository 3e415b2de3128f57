-- OneScreen schema, revision 0006: early warning (趋势智能预判).
-- Forecast (预警), baseline-anomaly and device-health rules are rows of incident_rule like the
-- threshold and offline rules; what they find are incidents of their own kind; each device's
-- learned normal (hour-of-day or hour-of-week median and spread) is kept in device_baseline.

-- Rules ------------------------------------------------------------------------------------------

ALTER TABLE incident_rule DROP CONSTRAINT incident_rule_kind_check;
ALTER TABLE incident_rule ADD CONSTRAINT incident_rule_kind_check CHECK (kind IN
    ('threshold', 'offline', 'forecast', 'baseline', 'stuck', 'jump', 'clock', 'peer'));
ALTER TABLE incident_rule
    -- forecast: how far ahead a breach of the `level` limit on `side` is looked for
    ADD COLUMN horizon_s  integer CHECK (horizon_s > 0),
    -- forecast: the probability of a breach within the horizon needed to raise a 预警
    ADD COLUMN confidence real CHECK (confidence > 0 AND confidence < 1),
    -- forecast: the recent history the trend is fitted on; clock: the lag that counts as skew
    ADD COLUMN window_s   integer CHECK (window_s > 0),
    -- forecast: readings needed in the window; stuck: identical readings in a row, at least
    -- (more for a series that often repeats itself); clock: skewed readings in a row;
    -- peer: street peers needed to judge
    ADD COLUMN min_points smallint CHECK (min_points >= 1),
    -- baseline, peer: robust z (|value - median| / spread) that counts as a departure;
    -- jump: a spike's size in the series' typical steps (and at least a quarter of its band)
    ADD COLUMN deviation  real CHECK (deviation > 0),
    ADD CONSTRAINT incident_rule_forecast_check CHECK (kind <> 'forecast' OR (
        level IS NOT NULL AND side IN (-1, 1) AND horizon_s IS NOT NULL
        AND confidence IS NOT NULL AND window_s IS NOT NULL AND min_points IS NOT NULL)),
    ADD CONSTRAINT incident_rule_baseline_check CHECK (kind <> 'baseline' OR (
        side IS NOT NULL AND deviation IS NOT NULL)),
    ADD CONSTRAINT incident_rule_health_check CHECK (
        (kind <> 'stuck' OR min_points IS NOT NULL)
        AND (kind <> 'jump' OR deviation IS NOT NULL)
        AND (kind <> 'clock' OR (window_s IS NOT NULL AND min_points IS NOT NULL))
        AND (kind <> 'peer' OR (deviation IS NOT NULL AND min_points IS NOT NULL)));

-- Incidents --------------------------------------------------------------------------------------

ALTER TABLE incident
    -- alarm: a threshold or offline rule; forecast: 预警, a breach expected; anomaly: a device
    -- away from its own normal; health: a sensor that lies (stuck, spikes, clock, peers)
    ADD COLUMN kind        text NOT NULL DEFAULT 'alarm'
                           CHECK (kind IN ('alarm', 'forecast', 'anomaly', 'health')),
    -- forecast: when the limit is expected to be crossed (the latest estimate)
    ADD COLUMN expected_at timestamptz,
    -- why: the figures the rule saw (limit, slope, probability, band, baseline, sentence)
    ADD COLUMN detail      jsonb NOT NULL DEFAULT '{}',
    -- alarm: the 预警 that foresaw it, and how many seconds before the alarm that was
    ADD COLUMN foreseen_by bigint REFERENCES incident ON DELETE SET NULL,
    ADD COLUMN lead_s      integer CHECK (lead_s >= 0),
    ADD CONSTRAINT incident_forecast_expected_check CHECK (kind <> 'forecast' OR expected_at IS NOT NULL);
CREATE INDEX incident_kind_live_idx ON incident (kind, expected_at) WHERE status <> 'resolved';
-- a 预警's page names the alarm that superseded it
CREATE INDEX incident_foreseen_by_idx ON incident (foreseen_by) WHERE foreseen_by IS NOT NULL;

ALTER TABLE incident_event DROP CONSTRAINT incident_event_kind_check;
ALTER TABLE incident_event ADD CONSTRAINT incident_event_kind_check CHECK (kind IN
    ('opened', 'acknowledged', 'assigned', 'note', 'resolved', 'reopened', 'escalated',
     'updated', 'superseded'));

-- Counters keyed by kind too, so alarm figures stay alarm figures and 预警 are counted apart.
ALTER TABLE incident_live ADD COLUMN kind text NOT NULL DEFAULT 'alarm';
ALTER TABLE incident_live DROP CONSTRAINT incident_live_pkey;
ALTER TABLE incident_live ADD PRIMARY KEY (street_code, category_code, severity, kind);
ALTER TABLE incident_daily ADD COLUMN kind text NOT NULL DEFAULT 'alarm';
ALTER TABLE incident_daily DROP CONSTRAINT incident_daily_pkey;
ALTER TABLE incident_daily ADD PRIMARY KEY (day, district_adcode, category_code, severity, kind);

CREATE OR REPLACE FUNCTION incident_count(row_ incident, sign integer) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO incident_daily AS c
        (day, district_adcode, category_code, severity, kind, opened, resolved, resolve_seconds)
    VALUES (city_day(row_.opened_at), row_.district_adcode, row_.category_code, row_.severity,
            row_.kind, sign, 0, 0)
    ON CONFLICT (day, district_adcode, category_code, severity, kind)
        DO UPDATE SET opened = c.opened + excluded.opened;
    IF row_.acknowledged_at IS NOT NULL THEN
        INSERT INTO incident_daily AS c
            (day, district_adcode, category_code, severity, kind, opened, resolved,
             resolve_seconds, acknowledged, acknowledge_seconds)
        VALUES (city_day(row_.acknowledged_at), row_.district_adcode, row_.category_code,
                row_.severity, row_.kind, 0, 0, 0, sign,
                sign * extract(epoch FROM row_.acknowledged_at - row_.opened_at))
        ON CONFLICT (day, district_adcode, category_code, severity, kind) DO UPDATE SET
            acknowledged = c.acknowledged + excluded.acknowledged,
            acknowledge_seconds = c.acknowledge_seconds + excluded.acknowledge_seconds;
    END IF;
    IF row_.status = 'resolved' THEN
        INSERT INTO incident_daily AS c
            (day, district_adcode, category_code, severity, kind, opened, resolved,
             resolve_seconds)
        VALUES (city_day(row_.resolved_at), row_.district_adcode, row_.category_code,
                row_.severity, row_.kind, 0, sign,
                sign * extract(epoch FROM row_.resolved_at - row_.opened_at))
        ON CONFLICT (day, district_adcode, category_code, severity, kind) DO UPDATE SET
            resolved = c.resolved + excluded.resolved,
            resolve_seconds = c.resolve_seconds + excluded.resolve_seconds;
    ELSE
        INSERT INTO incident_live AS c
            (street_code, category_code, severity, kind, district_adcode, n)
        VALUES (coalesce(row_.street_code, ''), row_.category_code, row_.severity, row_.kind,
                row_.district_adcode, sign)
        ON CONFLICT (street_code, category_code, severity, kind)
            DO UPDATE SET n = c.n + excluded.n;
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION incident_count(incident, integer) FROM PUBLIC;

-- When a reading reached the store: a device whose timestamps are far from it has a wrong clock.
ALTER TABLE rule_inbox ADD COLUMN arrived_at timestamptz NOT NULL DEFAULT now();

-- The reading trigger feeds the rules every live reading, not only those outside the normal range
-- (revision 0002's text is 0002_reading_trigger.sql); bulk loads (COPY into partitions) still
-- bypass it: history is for learning baselines, not for raising incidents.
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
        ts = excluded.ts, value = excluded.value, quality = excluded.quality, level = excluded.level
    WHERE excluded.ts >= l.ts;
    RETURN NULL;
END $$;

-- Learned normals ------------------------------------------------------------------------------
-- Per device: the median and robust spread of its readings in each hour of the day (24 slots)
-- or of the week (168, Monday 00:00 Asia/Shanghai first). A device with too little history of
-- its own gets its street's devices of the same type (source 'street'), else its type's
-- ('type'). No foreign key, as for device_latest: rewritten whole by `rules refit`.
CREATE TABLE device_baseline (
    device_id bigint PRIMARY KEY,
    slots     smallint NOT NULL CHECK (slots IN (24, 168)),
    median    real[] NOT NULL,
    spread    real[] NOT NULL,
    source    text NOT NULL CHECK (source IN ('device', 'street', 'type')),
    days      real NOT NULL CHECK (days >= 0),
    fitted_at timestamptz NOT NULL,
    CHECK (cardinality(median) = slots AND cardinality(spread) = slots)
);

GRANT SELECT ON device_baseline TO onescreen_web;
-- the device page draws the forecast its rules would make, and says why a 预警 was raised
GRANT SELECT ON incident_rule TO onescreen_web;
ALTER TABLE device_baseline ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON device_baseline FOR SELECT TO onescreen_web
    USING (current_setting('onescreen.scope', true) = '*'
           OR EXISTS (SELECT 1 FROM device d WHERE d.id = device_id));

-- Default early-warning rules -----------------------------------------------------------------
-- 预警 of the alarm limit: flood levels an hour ahead; gas, water mains and power half an hour.
INSERT INTO incident_rule (code, kind, category_code, value_kind, level, side, horizon_s,
                           confidence, window_s, min_points, duration_s, severity, clear_s)
SELECT r.code, 'forecast', r.category, 'analog', 2, r.side, r.horizon_s, 0.9, r.window_s, 5,
       0, r.severity, 600
FROM (VALUES ('forecast_high', 'flood', 1, 3600, 1800, 'critical'),
             ('forecast_high', 'gas', 1, 1800, 1200, 'critical'),
             ('forecast_low', 'gas', -1, 1800, 1200, 'critical'),
             ('forecast_high', 'water', 1, 1800, 1200, 'major'),
             ('forecast_low', 'water', -1, 1800, 1200, 'major'),
             ('forecast_high', 'power', 1, 3600, 1800, 'major'))
     AS r(code, category, side, horizon_s, window_s, severity);
-- Each household's routine: an elderly resident's meter or door away from its own normal.
INSERT INTO incident_rule (code, kind, category_code, value_kind, side, deviation, duration_s,
                           severity, clear_s)
-- (held 50 min: two hourly readings, so a door opened at an odd hour is not a broken routine)
VALUES ('routine', 'baseline', 'elderly', 'analog', 0, 4, 3000, 'major', 3600);
-- Sensors that lie: device-health incidents, for the maintenance crews, not alarms.
INSERT INTO incident_rule (code, kind, value_kind, min_points, severity, clear_s)
VALUES ('stuck', 'stuck', 'analog', 3, 'minor', 0);
INSERT INTO incident_rule (code, kind, value_kind, deviation, severity, clear_s)
VALUES ('spike', 'jump', 'analog', 4, 'minor', 3600);
INSERT INTO incident_rule (code, kind, window_s, min_points, severity, clear_s)
VALUES ('clock', 'clock', 900, 1, 'minor', 0);
INSERT INTO incident_rule (code, kind, value_kind, deviation, min_points, duration_s, severity,
                           clear_s)
VALUES ('peer', 'peer', 'analog', 8, 4, 1800, 'minor', 1800);
