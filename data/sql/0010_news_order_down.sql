-- Revision 0010 undone: walls go back to id marks.
DROP INDEX incident_event_news_idx;
ALTER TABLE incident_event DROP COLUMN written_xid;
DROP INDEX incident_written_xid_idx;
ALTER TABLE incident DROP COLUMN written_xid;
