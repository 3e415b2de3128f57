-- OneScreen schema, revision 0009: 专题 (scenarios) and events — one parent event for the
-- incidents of one scenario that belong together (neighbouring streets, overlapping in time),
-- so a storm's two thousand alarms are a handful of lines on the wall, not a wall of cards.
--
-- The six scenarios are the six categories of the same code. Grouping parameters are data:
--   group_min_members  an event needs this many members (NULL: never grouped — elderly care
--                      describes people at home, each its own case);
--   group_street_min   a street takes part in forming an event when it has this many of the
--                      scenario's incidents within group_gap_s of each other (one alarm in a
--                      street is a fault; two are a pattern), so scattered faults in
--                      neighbouring streets do not chain into one city-wide "event";
--   group_gap_s        members are at most this far apart in time; an event with no live member
--                      for this long closes.
-- category_code is not a foreign key: revisions run before the reference data is loaded.
CREATE TABLE topic (
    code              text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name_zh           text NOT NULL,
    name_en           text NOT NULL,
    event_zh          text NOT NULL,
    event_en          text NOT NULL,
    sort_order        smallint NOT NULL,
    group_min_members smallint CHECK (group_min_members >= 2),
    group_street_min  smallint NOT NULL DEFAULT 2 CHECK (group_street_min >= 1),
    group_gap_s       integer NOT NULL DEFAULT 1800 CHECK (group_gap_s BETWEEN 60 AND 86400),
    group_kinds       text[] NOT NULL DEFAULT '{alarm,anomaly,forecast}'
                      CHECK (group_kinds <@ ARRAY['alarm', 'anomaly', 'forecast']),
    params            jsonb NOT NULL DEFAULT '{}'
);
INSERT INTO topic (code, name_zh, name_en, event_zh, event_en, sort_order, group_min_members)
VALUES
    ('flood', '防汛防台', 'Flood & typhoon', '暴雨积水', 'Rainstorm flooding', 1, 3),
    ('power', '电力保障', 'Power supply', '区域停电', 'Power outage', 2, 3),
    ('water', '供水保障', 'Water mains', '管网失压', 'Water main failure', 3, 3),
    ('gas', '燃气安全', 'Gas safety', '燃气泄漏', 'Gas leak', 4, 3),
    ('elderly', '智慧养老', 'Elderly care', '养老告警', 'Elderly care alerts', 5, NULL),
    ('weather', '气象保障', 'Weather', '气象灾害', 'Severe weather', 6, 3);

-- Streets within ~200 m of each other (touching ones included): the grouping's "neighbouring".
-- Filled by refresh_street_neighbours() whenever the streets change.
CREATE TABLE street_neighbour (
    street_code    text NOT NULL REFERENCES street ON DELETE CASCADE,
    neighbour_code text NOT NULL REFERENCES street ON DELETE CASCADE,
    PRIMARY KEY (street_code, neighbour_code),
    CHECK (street_code <> neighbour_code)
);

CREATE FUNCTION refresh_street_neighbours() RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    pairs integer;
BEGIN
    DELETE FROM street_neighbour;
    INSERT INTO street_neighbour (street_code, neighbour_code)
    SELECT a.code, b.code
    FROM street a JOIN street b ON a.code <> b.code AND ST_DWithin(a.geom, b.geom, 0.002);
    GET DIAGNOSTICS pairs = ROW_COUNT;
    RETURN pairs;
END $$;
SELECT refresh_street_neighbours();

-- A parent event. Its footprint (districts, streets) and last_member_at are kept by the
-- grouping pass; a merged event points at the one that absorbed it.
CREATE TABLE incident_group (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category_code  text NOT NULL REFERENCES topic,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed', 'merged')),
    merged_into    bigint REFERENCES incident_group,
    opened_at      timestamptz NOT NULL,
    last_member_at timestamptz NOT NULL,
    closed_at      timestamptz,
    districts      text[] NOT NULL,
    streets        text[] NOT NULL,
    CHECK ((status = 'merged') = (merged_into IS NOT NULL)),
    CHECK ((status = 'active') = (closed_at IS NULL))
);
CREATE INDEX incident_group_active_idx ON incident_group (category_code) WHERE status = 'active';
CREATE INDEX incident_group_last_idx ON incident_group (last_member_at);

-- grouped_at: when the incident joined (replay rebuilds membership as it was at any moment)
ALTER TABLE incident ADD COLUMN group_id bigint REFERENCES incident_group ON DELETE SET NULL,
                     ADD COLUMN grouped_at timestamptz;
CREATE INDEX incident_group_member_idx ON incident (group_id, status) WHERE group_id IS NOT NULL;
-- the grouping pass reads the recent ungrouped incidents of a scenario
CREATE INDEX incident_ungrouped_idx ON incident (category_code, opened_at) WHERE group_id IS NULL;

ALTER TABLE incident_event DROP CONSTRAINT incident_event_kind_check;
ALTER TABLE incident_event ADD CONSTRAINT incident_event_kind_check CHECK (kind IN
    ('opened', 'acknowledged', 'assigned', 'note', 'resolved', 'reopened', 'escalated',
     'updated', 'superseded', 'grouped'));

-- The counters change only when a counted field does: grouping a storm's two thousand incidents
-- (or noting, assigning) moves no counter, where the old trigger undid and redid each row.
DROP TRIGGER incident_counters ON incident;
CREATE TRIGGER incident_counters
    AFTER INSERT OR DELETE ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_counters();
CREATE TRIGGER incident_counters_update
    AFTER UPDATE ON incident
    FOR EACH ROW
    WHEN ((OLD.status, OLD.severity, OLD.kind, OLD.category_code, OLD.district_adcode,
           OLD.street_code, OLD.opened_at, OLD.acknowledged_at, OLD.resolved_at)
          IS DISTINCT FROM
          (NEW.status, NEW.severity, NEW.kind, NEW.category_code, NEW.district_adcode,
           NEW.street_code, NEW.opened_at, NEW.acknowledged_at, NEW.resolved_at))
    EXECUTE FUNCTION incident_counters();

-- The web reads scenarios, neighbours and the events whose footprint meets its scope; an
-- event's member counts are read through incident's own policy, so a district manager counts
-- only his districts' members.
GRANT SELECT ON topic, street_neighbour, incident_group TO onescreen_web;
ALTER TABLE incident_group ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON incident_group FOR SELECT TO onescreen_web
    USING (current_setting('onescreen.scope', true) = '*'
           OR districts && string_to_array(nullif(current_setting('onescreen.scope', true), ''), ','));
