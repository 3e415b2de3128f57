-- Revision 0018 undone (resource_then is put back as 0014 wrote it before this runs; the loans'
-- history goes).
DELETE FROM resource_event WHERE kind = 'lent';
ALTER TABLE resource_event DROP CONSTRAINT resource_event_kind_check;
ALTER TABLE resource_event ADD CONSTRAINT resource_event_kind_check
    CHECK (kind IN ('dispatched', 'en_route', 'arrived', 'released', 'status'));
REVOKE INSERT (lent_to, from_lent_to) ON resource_event FROM onescreen_web;
ALTER TABLE resource_event DROP COLUMN IF EXISTS lent_to, DROP COLUMN IF EXISTS from_lent_to;
REVOKE UPDATE (lent_to, lent_by) ON resource FROM onescreen_web;
DROP TRIGGER IF EXISTS resource_lending ON resource;
DROP FUNCTION IF EXISTS resource_check_lending();
ALTER TABLE resource DROP CONSTRAINT IF EXISTS resource_lent_city_only;
ALTER TABLE resource DROP COLUMN IF EXISTS lent_by;
