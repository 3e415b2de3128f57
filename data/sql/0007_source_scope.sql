-- OneScreen schema, revision 0007: ingest tokens bound to what their owner owns, and their
-- MQTT login.
--
-- A token carries its scope: its device (device_id, as before), or categories × districts
-- (NULL = every category / every district). The scope is on the token, not the source, because
-- the token is what a sender presents on both paths (the HTTP bearer token, and the MQTT login
-- whose topic names it): a department may hold several tokens of different reach (one per
-- district gateway), and revoking one leaves the others.
--
-- Tokens created before 0007 keep the reach they had: a device token its device, a source token
-- the whole city (categories and districts NULL). Revoking them would stop every deployed
-- integration at upgrade, and narrowing them would need knowledge of their owners the database
-- does not have. `tokens list` shows them as city-wide and without an MQTT login (their secret
-- was never stored, so no broker password can be derived; every token made from 0007 on has
-- one), so an operator can replace them with scoped ones. New tokens are city-wide only when
-- created with `--all`.
--
-- The MQTT login of a token: user name `<source>.<first 10 hex digits of its SHA-256>`, and the
-- token itself as the password, stored only as Mosquitto's PBKDF2-SHA512 form ($7$…), from which
-- the broker's password file is written. Its topic is `<prefix>/<mqtt_username>/telemetry`.
ALTER TABLE ingest_token
    ADD COLUMN categories          text[] CHECK (cardinality(categories) > 0),
    ADD COLUMN districts           text[] CHECK (cardinality(districts) > 0),
    ADD COLUMN mqtt_username       text UNIQUE
                                   CHECK (mqtt_username ~ '^[a-z0-9][a-z0-9_-]{0,62}\.[0-9a-f]{10}$'),
    ADD COLUMN mqtt_password_hash  text CHECK (mqtt_password_hash ~ '^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$'),
    ADD CONSTRAINT ingest_token_mqtt_check
        CHECK ((mqtt_username IS NULL) = (mqtt_password_hash IS NULL));
