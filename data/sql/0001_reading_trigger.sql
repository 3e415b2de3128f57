-- The reading insert trigger's function as revision 0001 created it (rollups and latest state
-- only). Revision 0002 replaces it (0002_reading_trigger.sql); 0002's downgrade runs this file.

-- One statement per batch: the batch is joined to its devices once, then aggregated twice, at the
-- grain of each rollup (street x category x 15 min; district x type x hour); the daily rollup is
-- derived from the street aggregate. Upserts go in key order so concurrent batches lock rows in
-- the same order and cannot deadlock.
CREATE OR REPLACE FUNCTION reading_after_insert() RETURNS trigger
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
BEGIN
    WITH id_range AS (
        SELECT min(device_id) AS low, max(device_id) AS high FROM new_readings
    ),
    -- only the devices in the batch's id range: bulk batches are id-contiguous, so the join
    -- hashes thousands of devices instead of the whole table
    batch_devices AS (
        SELECT d.id, d.district_adcode, d.street_code, d.type_id
        FROM device d, id_range r
        WHERE d.id BETWEEN r.low AND r.high
    ),
    batch AS MATERIALIZED (
        SELECT n.device_id, n.ts, n.value, n.quality,
               d.district_adcode, d.street_code, d.type_id, t.category_code,
               reading_level(n.value, t.normal_min, t.normal_max, t.alarm_min, t.alarm_max) AS level
        FROM new_readings n
        LEFT JOIN batch_devices d ON d.id = n.device_id
        LEFT JOIN device_type t ON t.id = d.type_id
    ),
    guard AS (
        SELECT assert_known_devices(count(*) FILTER (WHERE type_id IS NULL)) AS ok FROM batch
    ),
    by_street AS MATERIALIZED (
        SELECT bucket_15m(b.ts) AS bucket, b.street_code, b.category_code, b.district_adcode,
               count(*) AS n,
               count(*) FILTER (WHERE b.level = 1) AS n_warning,
               count(*) FILTER (WHERE b.level = 2) AS n_alarm,
               count(*) FILTER (WHERE b.quality > 0) AS n_bad
        FROM batch b, guard g
        WHERE g.ok
        GROUP BY 1, 2, 3, 4
    ),
    street_15m AS (
        INSERT INTO rollup_street_15m AS r
            (bucket, street_code, category_code, district_adcode,
             n_readings, n_warning, n_alarm, n_bad_quality)
        SELECT bucket, street_code, category_code, district_adcode, n, n_warning, n_alarm, n_bad
        FROM by_street
        ORDER BY bucket, street_code, category_code
        ON CONFLICT (bucket, street_code, category_code) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm,
            n_bad_quality = r.n_bad_quality + excluded.n_bad_quality
    ),
    district_type_1h AS (
        INSERT INTO rollup_district_type_1h AS r
            (bucket, district_adcode, type_id, n_readings, n_warning, n_alarm,
             value_sum, value_min, value_max)
        SELECT bucket_1h(b.ts), b.district_adcode, b.type_id,
               count(*), count(*) FILTER (WHERE b.level = 1), count(*) FILTER (WHERE b.level = 2),
               sum(b.value), min(b.value), max(b.value)
        FROM batch b, guard g
        WHERE g.ok
        GROUP BY 1, 2, 3
        ORDER BY 2, 3, 1
        ON CONFLICT (district_adcode, type_id, bucket) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm,
            value_sum = r.value_sum + excluded.value_sum,
            value_min = least(r.value_min, excluded.value_min),
            value_max = greatest(r.value_max, excluded.value_max)
    ),
    district_daily AS (
        INSERT INTO rollup_district_daily AS r
            (day, district_adcode, category_code, n_readings, n_warning, n_alarm)
        SELECT city_day(bucket), district_adcode, category_code,
               sum(n), sum(n_warning), sum(n_alarm)
        FROM by_street
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (day, district_adcode, category_code) DO UPDATE SET
            n_readings = r.n_readings + excluded.n_readings,
            n_warning = r.n_warning + excluded.n_warning,
            n_alarm = r.n_alarm + excluded.n_alarm
    )
    INSERT INTO device_latest AS l (device_id, ts, value, quality, level)
    SELECT DISTINCT ON (b.device_id) b.device_id, b.ts, b.value, b.quality, b.level
    FROM batch b, guard g
    WHERE g.ok
    ORDER BY b.device_id, b.ts DESC
    ON CONFLICT (device_id) DO UPDATE SET
        ts = excluded.ts, value = excluded.value, quality = excluded.quality, level = excluded.level
    WHERE excluded.ts >= l.ts;
    RETURN NULL;
END $$;
