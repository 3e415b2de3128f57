-- Revision 0007 undone: tokens lose their category/district scope and their MQTT login. A token
-- narrower than the city would become city-wide without its scope, so it is revoked instead.
UPDATE ingest_token SET revoked_at = now()
 WHERE revoked_at IS NULL AND (categories IS NOT NULL OR districts IS NOT NULL);
ALTER TABLE ingest_token DROP CONSTRAINT ingest_token_mqtt_check,
    DROP COLUMN mqtt_password_hash, DROP COLUMN mqtt_username,
    DROP COLUMN districts, DROP COLUMN categories;
