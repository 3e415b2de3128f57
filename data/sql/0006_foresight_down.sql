-- Revision 0006 undone: early-warning rules, incidents and baselines go; counters lose `kind`.
DROP TABLE device_baseline;
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
