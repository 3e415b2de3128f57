-- Revision 0017: the incident timeline's handling lines (acknowledged, resolved, reopened per
-- bucket) read per-quarter-hour counters, as its opened bars do since revision 0015, not every
-- handling event of every incident of the scope: at seed scale a district's read walked all of
-- its 17,000 incidents' events (13 ms, and growing with history). Kept by triggers on
-- incident_event and on incident (an incident moved or deleted takes its counts along).
CREATE TABLE incident_handled_15m (
    bucket          timestamptz NOT NULL,
    district_adcode text NOT NULL,
    street_code     text NOT NULL,  -- '' for an incident of no street
    category_code   text NOT NULL,
    incident_kind   text NOT NULL,
    event_kind      text NOT NULL,
    n               integer NOT NULL,
    PRIMARY KEY (bucket, district_adcode, street_code, category_code, incident_kind, event_kind)
);
CREATE INDEX incident_handled_15m_district_idx ON incident_handled_15m (district_adcode, bucket);
INSERT INTO incident_handled_15m
SELECT bucket_15m(e.at), i.district_adcode, coalesce(i.street_code, ''), i.category_code, i.kind,
       e.kind, count(*)
FROM incident_event e JOIN incident i ON i.id = e.incident_id
WHERE e.kind IN ('acknowledged', 'resolved', 'reopened')
GROUP BY 1, 2, 3, 4, 5, 6;
GRANT SELECT ON incident_handled_15m TO onescreen_web;
ALTER TABLE incident_handled_15m ENABLE ROW LEVEL SECURITY;
CREATE POLICY web_read ON incident_handled_15m FOR SELECT TO onescreen_web
    USING (onescreen_scope_allows(district_adcode));

-- Add `sign` × the handling events among `events` (incident_id, at, kind) to the counters, each
-- under its incident as it stands (district, street, category, kind).
CREATE OR REPLACE FUNCTION incident_handled_add(events jsonb, sign integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO incident_handled_15m AS r
    SELECT bucket_15m(e.at), i.district_adcode, coalesce(i.street_code, ''), i.category_code,
           i.kind, e.kind, sign * count(*)
    FROM jsonb_to_recordset(events) AS e(incident_id bigint, at timestamptz, kind text)
    JOIN incident i ON i.id = e.incident_id
    WHERE e.kind IN ('acknowledged', 'resolved', 'reopened')
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, district_adcode, street_code, category_code, incident_kind, event_kind)
    DO UPDATE SET n = r.n + excluded.n
$$;

-- The trigger functions run as their owner: duty officers (the web role) acknowledge and resolve
-- incidents, and may not write the counters themselves.
CREATE OR REPLACE FUNCTION incident_handled_counted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM incident_handled_add(
            (SELECT jsonb_agg(jsonb_build_object('incident_id', incident_id, 'at', at,
                                                 'kind', kind))
             FROM new_rows WHERE kind IN ('acknowledged', 'resolved', 'reopened')), 1);
    ELSE
        -- events deleted on their own; an incident's deleted with it were taken off before
        -- (incident_handled_forgotten), and its row is gone by now, so nothing counts twice
        PERFORM incident_handled_add(
            (SELECT jsonb_agg(jsonb_build_object('incident_id', incident_id, 'at', at,
                                                 'kind', kind))
             FROM old_rows WHERE kind IN ('acknowledged', 'resolved', 'reopened')), -1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER incident_handled_inserted AFTER INSERT ON incident_event
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_handled_counted();
CREATE TRIGGER incident_handled_deleted AFTER DELETE ON incident_event
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_handled_counted();

-- An incident moved between counters (a corrected place or category: rare) takes its handling
-- events along; one deleted takes them off before its events go with it.
CREATE OR REPLACE FUNCTION incident_handled_moved() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    events jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_object('incident_id', e.incident_id, 'at', e.at, 'kind', e.kind))
    INTO events
    FROM incident_event e
    WHERE e.incident_id = OLD.id AND e.kind IN ('acknowledged', 'resolved', 'reopened');
    IF events IS NULL THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NULL END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM incident_handled_add(events, -1);  -- the incident still stands: BEFORE DELETE
        RETURN OLD;
    END IF;
    -- AFTER UPDATE: the incident reads as NEW now; take OLD's counts off by hand
    INSERT INTO incident_handled_15m AS r
    SELECT bucket_15m(e.at), OLD.district_adcode, coalesce(OLD.street_code, ''),
           OLD.category_code, OLD.kind, e.kind, -count(*)
    FROM jsonb_to_recordset(events) AS e(incident_id bigint, at timestamptz, kind text)
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, district_adcode, street_code, category_code, incident_kind, event_kind)
    DO UPDATE SET n = r.n + excluded.n;
    PERFORM incident_handled_add(events, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER incident_handled_moved
    AFTER UPDATE OF district_adcode, street_code, category_code, kind ON incident FOR EACH ROW
    WHEN ((OLD.district_adcode, OLD.street_code, OLD.category_code, OLD.kind)
          IS DISTINCT FROM (NEW.district_adcode, NEW.street_code, NEW.category_code, NEW.kind))
    EXECUTE FUNCTION incident_handled_moved();
CREATE TRIGGER incident_handled_forgotten BEFORE DELETE ON incident FOR EACH ROW
    EXECUTE FUNCTION incident_handled_moved();
