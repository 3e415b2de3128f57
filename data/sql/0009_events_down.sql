-- Revision 0009 undone: events, street neighbours and scenarios go; the counters fire on every
-- update again, as revision 0001 made them.
DROP TRIGGER incident_counters_update ON incident;
DROP TRIGGER incident_counters ON incident;
CREATE TRIGGER incident_counters
    AFTER INSERT OR UPDATE OR DELETE ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_counters();
DELETE FROM incident_event WHERE kind = 'grouped';
ALTER TABLE incident_event DROP CONSTRAINT incident_event_kind_check;
ALTER TABLE incident_event ADD CONSTRAINT incident_event_kind_check CHECK (kind IN
    ('opened', 'acknowledged', 'assigned', 'note', 'resolved', 'reopened', 'escalated',
     'updated', 'superseded'));
DROP INDEX incident_ungrouped_idx;
DROP INDEX incident_group_member_idx;
ALTER TABLE incident DROP COLUMN grouped_at, DROP COLUMN group_id;
DROP TABLE incident_group;
DROP FUNCTION refresh_street_neighbours();
DROP TABLE street_neighbour;
DROP TABLE topic;
