-- Revision 0017 undone.
DROP TRIGGER IF EXISTS incident_handled_forgotten ON incident;
DROP TRIGGER IF EXISTS incident_handled_moved ON incident;
DROP TRIGGER IF EXISTS incident_handled_deleted ON incident_event;
DROP TRIGGER IF EXISTS incident_handled_inserted ON incident_event;
DROP FUNCTION IF EXISTS incident_handled_moved();
DROP FUNCTION IF EXISTS incident_handled_counted();
DROP FUNCTION IF EXISTS incident_handled_add(jsonb, integer);
DROP TABLE IF EXISTS incident_handled_15m;
