-- Revision 0016 undone.
DROP INDEX IF EXISTS reading_ts_brin;
