-- Revision 0012: what a monitor stands for. An outage monitor watches a transformer area
-- (台区): the households it feeds are how a power scenario estimates who is without supply.
-- Known by the grid operator, imported per device (`import-served`); NULL where unknown.
ALTER TABLE device ADD COLUMN served integer CHECK (served BETWEEN 0 AND 100000);
COMMENT ON COLUMN device.served IS
    'households (or connections) the monitor stands for, e.g. an outage monitor''s transformer area';
