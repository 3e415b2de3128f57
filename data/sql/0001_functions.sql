-- OneScreen functions and triggers, revision 0001 (re-runnable: CREATE OR REPLACE throughout).

-- 15-minute and hourly buckets are bins from a Shanghai midnight, so they align with local hours
-- and days whatever the session time zone is.
CREATE OR REPLACE FUNCTION bucket_15m(ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN date_bin('15 minutes', ts, timestamptz '2000-01-01 00:00:00+08');

CREATE OR REPLACE FUNCTION bucket_1h(ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+08');

CREATE OR REPLACE FUNCTION city_day(ts timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (ts AT TIME ZONE 'Asia/Shanghai')::date;

CREATE OR REPLACE FUNCTION city_midnight(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (d::timestamp AT TIME ZONE 'Asia/Shanghai');

-- 0 normal, 1 warning (outside the normal range), 2 alarm (beyond an alarm threshold)
CREATE OR REPLACE FUNCTION reading_level(
    v double precision, normal_min double precision, normal_max double precision,
    alarm_min double precision, alarm_max double precision
) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN (alarm_max IS NOT NULL AND v > alarm_max) OR (alarm_min IS NOT NULL AND v < alarm_min)
        THEN 2
    WHEN v > normal_max OR v < normal_min THEN 1
    ELSE 0
END::smallint;

-- Partitions ----------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ensure_reading_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created integer := 0;
    part text;
BEGIN
    IF to_ts < from_ts THEN
        RAISE EXCEPTION 'ensure_reading_partitions: to_ts % is before from_ts %', to_ts, from_ts;
    END IF;
    IF city_day(to_ts) - city_day(from_ts) > 3660 THEN
        RAISE EXCEPTION 'ensure_reading_partitions: refusing to create more than 10 years of partitions';
    END IF;
    -- concurrent writers would otherwise race to create the same partition
    PERFORM pg_advisory_xact_lock(hashtext('onescreen.reading_partitions'));
    FOR d IN SELECT generate_series(city_day(from_ts), city_day(to_ts), interval '1 day')::date LOOP
        part := 'reading_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF reading FOR VALUES FROM (%L) TO (%L)',
                part, city_midnight(d), city_midnight(d + 1));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION drop_reading_partitions_before(keep_from date)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'reading'::regclass
          AND c.relname ~ '^reading_p[0-9]{8}$'
          AND to_date(substr(c.relname, 10), 'YYYYMMDD') < keep_from
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        RETURN NEXT part.relname;
    END LOOP;
END $$;

-- Maintenance of rollups and latest state as readings arrive ------------------------------------

CREATE OR REPLACE FUNCTION assert_known_devices(unknown bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF unknown > 0 THEN
        RAISE EXCEPTION 'batch rejected: % reading(s) for unknown device ids', unknown
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN true;
END $$;

-- reading_after_insert() lives in 0001_reading_trigger.sql (revision 0001 runs it first).

-- The bulk loader (data/writes.py: bulk_copy_readings) writes partitions directly, which does not
-- fire this trigger on the parent, and applies the same deltas itself.
CREATE TRIGGER reading_rollups
    AFTER INSERT ON reading
    REFERENCING NEW TABLE AS new_readings
    FOR EACH STATEMENT EXECUTE FUNCTION reading_after_insert();

-- Rebuild every rollup of a time window from the raw readings (after a street re-import, or repair).
CREATE OR REPLACE FUNCTION rebuild_rollups(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    rows_seen bigint;
    from_bucket timestamptz := bucket_1h(from_ts);
BEGIN
    DELETE FROM rollup_street_15m WHERE bucket >= from_bucket AND bucket < to_ts;
    DELETE FROM rollup_district_type_1h WHERE bucket >= from_bucket AND bucket < to_ts;
    DELETE FROM rollup_district_daily
        WHERE day >= city_day(from_bucket) AND day <= city_day(to_ts);
    CREATE TEMP TABLE rebuild_fine ON COMMIT DROP AS
        SELECT bucket_15m(r.ts) AS bucket, d.street_code, d.district_adcode, t.category_code,
               d.type_id,
               count(*) AS n,
               count(*) FILTER (WHERE reading_level(r.value, t.normal_min, t.normal_max,
                                                    t.alarm_min, t.alarm_max) = 1) AS n_warning,
               count(*) FILTER (WHERE reading_level(r.value, t.normal_min, t.normal_max,
                                                    t.alarm_min, t.alarm_max) = 2) AS n_alarm,
               count(*) FILTER (WHERE r.quality > 0) AS n_bad,
               sum(r.value) AS v_sum, min(r.value) AS v_min, max(r.value) AS v_max
        FROM reading r
        JOIN device d ON d.id = r.device_id
        JOIN device_type t ON t.id = d.type_id
        WHERE r.ts >= least(from_bucket, city_midnight(city_day(from_bucket)))
          AND r.ts < greatest(to_ts, city_midnight(city_day(to_ts) + 1))
        GROUP BY 1, 2, 3, 4, 5;
    SELECT coalesce(sum(n), 0) INTO rows_seen FROM rebuild_fine;
    INSERT INTO rollup_street_15m
    SELECT bucket, street_code, category_code, district_adcode,
           sum(n), sum(n_warning), sum(n_alarm), sum(n_bad)
    FROM rebuild_fine WHERE bucket >= from_bucket AND bucket < to_ts
    GROUP BY bucket, street_code, category_code, district_adcode;
    INSERT INTO rollup_district_type_1h
    SELECT bucket_1h(bucket), district_adcode, type_id, sum(n), sum(n_warning), sum(n_alarm),
           sum(v_sum), min(v_min), max(v_max)
    FROM rebuild_fine WHERE bucket >= from_bucket AND bucket < to_ts
    GROUP BY 1, 2, 3;
    INSERT INTO rollup_district_daily
    SELECT city_day(bucket), district_adcode, category_code, sum(n), sum(n_warning), sum(n_alarm)
    FROM rebuild_fine
    GROUP BY 1, 2, 3;
    RETURN rows_seen;
END $$;

-- Status snapshot ------------------------------------------------------------------------------

-- A device is online when its latest reading is younger than three expected intervals (at least
-- ten minutes, so a late 60-second device is not flapping).
CREATE OR REPLACE FUNCTION refresh_status(at timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    devices integer;
BEGIN
    -- one refresher at a time; readers keep seeing the previous snapshot until commit
    PERFORM pg_advisory_xact_lock(hashtext('onescreen.refresh_status'));
    CREATE TEMP TABLE status_now ON COMMIT DROP AS
        SELECT d.id, d.street_code, d.district_adcode, d.cell, t.category_code,
               d.status = 'maintenance' AS in_maintenance,
               (d.status = 'active' AND l.ts IS NOT NULL
                AND l.ts > at - greatest(3 * t.interval_s, 600) * interval '1 second') AS online,
               coalesce(l.level, 0) AS level
        FROM device d
        JOIN device_type t ON t.id = d.type_id
        LEFT JOIN device_latest l ON l.device_id = d.id
        WHERE d.status <> 'retired';
    GET DIAGNOSTICS devices = ROW_COUNT;

    DELETE FROM street_status;
    INSERT INTO street_status
    SELECT street_code, category_code, district_adcode,
           count(*), count(*) FILTER (WHERE online),
           count(*) FILTER (WHERE online AND level = 1),
           count(*) FILTER (WHERE online AND level = 2),
           count(*) FILTER (WHERE in_maintenance)
    FROM status_now
    GROUP BY street_code, category_code, district_adcode;

    -- a cell belongs to the district and street of its centre, whatever its devices' addresses
    DELETE FROM cell_status;
    INSERT INTO cell_status
    SELECT s.cell, s.category_code, g.district_adcode, g.street_code,
           count(*), count(*) FILTER (WHERE s.online),
           count(*) FILTER (WHERE s.online AND s.level = 1),
           count(*) FILTER (WHERE s.online AND s.level = 2)
    FROM status_now s
    JOIN grid_cell g ON g.cell = s.cell
    GROUP BY s.cell, s.category_code, g.district_adcode, g.street_code;

    INSERT INTO app_meta (key, value, updated_at)
    VALUES ('status_as_of', to_jsonb(at), now())
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
    RETURN devices;
END $$;

-- Incident lifecycle: open -> acknowledged -> resolved, and resolved -> open (reopen) ----------

CREATE OR REPLACE FUNCTION incident_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT (
        (OLD.status = 'open' AND NEW.status IN ('acknowledged', 'resolved'))
        OR (OLD.status = 'acknowledged' AND NEW.status IN ('resolved', 'open'))
        OR (OLD.status = 'resolved' AND NEW.status = 'open')
    ) THEN
        RAISE EXCEPTION 'incident %: cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'open' THEN
        NEW.resolved_at := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER incident_transition
    BEFORE UPDATE OF status ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_check_transition();

-- Incident counters ----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION incident_count(row_ incident, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO incident_daily AS c
        (day, district_adcode, category_code, severity, opened, resolved, resolve_seconds)
    VALUES (city_day(row_.opened_at), row_.district_adcode, row_.category_code, row_.severity,
            sign, 0, 0)
    ON CONFLICT (day, district_adcode, category_code, severity)
        DO UPDATE SET opened = c.opened + excluded.opened;
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

CREATE OR REPLACE FUNCTION incident_counters() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM incident_count(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM incident_count(NEW, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER incident_counters
    AFTER INSERT OR UPDATE OR DELETE ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_counters();
