-- Revision 0015 undone: its tables, triggers and columns go; the revision's migration module then
-- puts back refresh_status() as 0014 wrote it and the reading trigger as 0002 did.
DROP TRIGGER IF EXISTS incident_opened_inserted ON incident;
DROP TRIGGER IF EXISTS incident_opened_deleted ON incident;
DROP TRIGGER IF EXISTS incident_opened_moved ON incident;
DROP FUNCTION IF EXISTS incident_opened_counted();
DROP TABLE IF EXISTS incident_opened_15m;
DROP TRIGGER IF EXISTS device_type_updated ON device_type;
DROP TRIGGER IF EXISTS device_inserted ON device;
DROP TRIGGER IF EXISTS device_updated ON device;
DROP TRIGGER IF EXISTS device_deleted ON device;
DROP TRIGGER IF EXISTS device_latest_deleted ON device_latest;
DROP FUNCTION IF EXISTS device_latest_deleted();
DROP FUNCTION IF EXISTS device_type_changed();
DROP FUNCTION IF EXISTS device_changed();
DROP FUNCTION IF EXISTS status_apply_deltas();
DROP FUNCTION IF EXISTS status_deltas();
DROP FUNCTION IF EXISTS status_moves(timestamptz);
DROP FUNCTION IF EXISTS status_candidates(timestamptz, boolean, integer);
DROP TABLE IF EXISTS status_device_change;
DROP TABLE IF EXISTS device_counted;
ALTER TABLE device_latest DROP COLUMN IF EXISTS counted, DROP COLUMN IF EXISTS dirty,
    DROP COLUMN IF EXISTS recheck_at;
