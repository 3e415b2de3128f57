-- Revision 0013 undone: no resources, dispatch or playbooks.
DROP TRIGGER warning_level_change_playbook ON warning_level_change;
DROP FUNCTION playbook_on_level_change();
ALTER TABLE resource DROP CONSTRAINT resource_task_fk;
DROP TABLE playbook_task;
DROP TABLE playbook_action;
DELETE FROM incident_event WHERE kind IN ('dispatched', 'arrived', 'released');
ALTER TABLE incident_event DROP CONSTRAINT incident_event_kind_check;
ALTER TABLE incident_event ADD CONSTRAINT incident_event_kind_check CHECK (kind IN
    ('opened', 'acknowledged', 'assigned', 'note', 'resolved', 'reopened', 'escalated',
     'updated', 'superseded', 'grouped'));
DROP TABLE resource_event;
DROP TABLE resource;
DROP FUNCTION onescreen_unit_in_scope(text, text);
DROP TABLE travel_model;
DROP TABLE resource_kind;
