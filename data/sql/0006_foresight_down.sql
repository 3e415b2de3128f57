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
-- incident_count() and reading_after_insert() as revisions 0004 and 0002 left them are restored
-- from those revisions' own files (data/migrations/versions/0006_foresight.py)
