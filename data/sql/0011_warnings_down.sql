-- Revision 0011 undone: no warning levels.
DROP TABLE warning_level_change;
DROP FUNCTION warning_in_force(warning_level);
DROP TABLE warning_level;
DROP TABLE warning_rule;
ALTER TABLE topic DROP COLUMN warning_hold_s;
