-- Revision 0012 undone: no households per monitor.
ALTER TABLE device DROP COLUMN served;
