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
