-- Revision 0018: the city's duty desk lends its reserve units to districts, and takes them back,
-- from the resource board. The web role may now change a unit's lent_to, under revision 0013's
-- update policy (an acting session, the unit in its scope). What that policy cannot say about
-- one column is said here: only a session serving the whole city lends or takes back (a district
-- manager uses a unit lent to it, it does not lend it on), and only city units are lent.

-- who lent it: the duty officer of the demo takes back only what it lent itself
ALTER TABLE resource ADD COLUMN lent_by text CHECK (char_length(lent_by) <= 100);
ALTER TABLE resource ADD CONSTRAINT resource_lent_city_only
    CHECK (lent_to IS NULL OR district_adcode IS NULL) NOT VALID;
ALTER TABLE resource VALIDATE CONSTRAINT resource_lent_city_only;

CREATE FUNCTION resource_check_lending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- a web session states its scope in every transaction ('*' the city, or its districts);
    -- the owner's sessions (the CLI, the simulator's duty officer) state none
    IF coalesce(current_setting('onescreen.scope', true), '') NOT IN ('', '*') THEN
        RAISE EXCEPTION 'only the city lends units or takes them back'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER resource_lending BEFORE UPDATE OF lent_to ON resource
    FOR EACH ROW WHEN (NEW.lent_to IS DISTINCT FROM OLD.lent_to)
    EXECUTE FUNCTION resource_check_lending();

GRANT UPDATE (lent_to, lent_by) ON resource TO onescreen_web;

-- A loan is part of the unit's history (resource_event kind 'lent': to whom, and from whom it
-- came), so a replay shows the units a district held then, not the loans of today.
ALTER TABLE resource_event ADD COLUMN lent_to text REFERENCES district,
    ADD COLUMN from_lent_to text REFERENCES district;
ALTER TABLE resource_event DROP CONSTRAINT resource_event_kind_check;
ALTER TABLE resource_event ADD CONSTRAINT resource_event_kind_check
    CHECK (kind IN ('dispatched', 'en_route', 'arrived', 'released', 'status', 'lent'));
GRANT INSERT (lent_to, from_lent_to) ON resource_event TO onescreen_web;

-- One unit as it stood at an instant (revision 0014's, and now whom a city unit was lent to).
CREATE OR REPLACE FUNCTION resource_then(r resource, at timestamptz) RETURNS resource
LANGUAGE plpgsql STABLE AS $$
DECLARE
    u resource := r;
    e resource_event;
BEGIN
    SELECT * INTO e FROM resource_event x
    WHERE x.resource_id = r.id AND x.at <= resource_then.at
    ORDER BY x.at DESC, x.id DESC LIMIT 1;
    IF FOUND THEN
        u.status := e.to_status;
    ELSE
        -- nothing had happened to it yet: as its first change found it
        u.status := coalesce(
            (SELECT x.from_status FROM resource_event x WHERE x.resource_id = r.id
             ORDER BY x.at, x.id LIMIT 1),
            r.status);
    END IF;
    IF u.status IN ('dispatched', 'en_route', 'on_site') THEN
        SELECT * INTO e FROM resource_event x
        WHERE x.resource_id = r.id AND x.at <= resource_then.at AND x.kind = 'dispatched'
        ORDER BY x.at DESC, x.id DESC LIMIT 1;
        u.incident_id := e.incident_id;
        u.task_id := e.task_id;
        u.dispatched_at := e.at;
        u.eta_at := e.at + coalesce(e.eta_s, 0) * interval '1 second';
        u.target := CASE WHEN r.dispatched_at = e.at THEN r.target
                         ELSE (SELECT i.geom FROM incident i WHERE i.id = e.incident_id) END;
    ELSE
        u.incident_id := NULL;
        u.task_id := NULL;
        u.target := NULL;
        u.eta_at := NULL;
    END IF;
    u.geom := coalesce(
        (SELECT t.geom FROM resource_track t
         WHERE t.resource_id = r.id AND t.at <= resource_then.at
         ORDER BY t.at DESC LIMIT 1),
        CASE WHEN EXISTS (SELECT 1 FROM resource_track t WHERE t.resource_id = r.id)
             THEN r.home ELSE r.geom END);
    IF r.district_adcode IS NULL THEN  -- a city unit: whom it was lent to then
        SELECT * INTO e FROM resource_event x
        WHERE x.resource_id = r.id AND x.kind = 'lent' AND x.at <= resource_then.at
        ORDER BY x.at DESC, x.id DESC LIMIT 1;
        IF FOUND THEN
            u.lent_to := e.lent_to;
            u.lent_by := CASE WHEN e.lent_to IS NOT NULL THEN e.actor END;
        ELSIF EXISTS (SELECT 1 FROM resource_event x WHERE x.resource_id = r.id AND x.kind = 'lent')
        THEN  -- before its first loan change: as that change found it
            u.lent_to := (SELECT x.from_lent_to FROM resource_event x
                          WHERE x.resource_id = r.id AND x.kind = 'lent'
                          ORDER BY x.at, x.id LIMIT 1);
            u.lent_by := NULL;
        END IF;
    END IF;
    RETURN u;
END $$;

