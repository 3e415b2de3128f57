-- Revision 0018 undone.
REVOKE UPDATE (lent_to, lent_by) ON resource FROM onescreen_web;
DROP TRIGGER IF EXISTS resource_lending ON resource;
DROP FUNCTION IF EXISTS resource_check_lending();
ALTER TABLE resource DROP CONSTRAINT IF EXISTS resource_lent_city_only;
ALTER TABLE resource DROP COLUMN IF EXISTS lent_by;
