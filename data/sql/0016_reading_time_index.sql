-- A block-range (BRIN) index on each reading partition's time: readings arrive in about time
-- order, so the index is a few pages per day, costs ingest next to nothing (no per-row entry;
-- ranges summarised as they fill), and finds the last minutes' readings without reading the
-- day. The health probe's "newest reading" was a scan of every device's latest row: 1-2 s at
-- 10M devices, past the probe's deadline.
CREATE INDEX reading_ts_brin ON reading USING brin (ts) WITH (pages_per_range = 16, autosummarize = on);
