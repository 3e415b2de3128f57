-- Revision 0014 undone: no replay history; the status snapshot and reading partitions as before.
DROP FUNCTION incident_live_at(timestamptz);
DROP FUNCTION cell_status_at(timestamptz, text);
DROP FUNCTION street_status_at(timestamptz);
DROP FUNCTION status_frame_at(timestamptz);
DROP FUNCTION incidents_at(timestamptz);
DROP FUNCTION incident_then(incident, timestamptz);
DROP FUNCTION resource_then(resource, timestamptz);
DROP FUNCTION group_final(bigint);
DROP FUNCTION status_frame_from_readings(timestamptz);
DROP FUNCTION count_status(timestamptz, boolean);
DROP TRIGGER incident_event_severity ON incident_event;
DROP FUNCTION incident_event_severity();
ALTER TABLE incident_event DROP COLUMN severity;
ALTER TABLE incident_event DROP COLUMN group_id;
DROP TABLE resource_track;
DROP TABLE cell_status_history;
DROP TABLE status_history;
DROP TABLE status_refresh;

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
DROP FUNCTION drop_day_partitions_before(regclass, date);
DROP FUNCTION ensure_day_partitions(regclass, timestamptz, timestamptz);
