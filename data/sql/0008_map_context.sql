-- Map context: rivers, coast, sea, metro lines and stations (roads and names when a user imports
-- them) drawn faintly under the data. WGS-84 like the rest of the store. Replaced whole by
-- `import-context`; the bundled Shanghai layer is loaded when the table is empty.
CREATE TABLE map_context (
    id       serial PRIMARY KEY,
    kind     text NOT NULL
             CHECK (kind IN ('water', 'coast', 'river', 'road', 'metro_line', 'metro_station')),
    name_zh  text,
    name_en  text,
    ref      text,
    color    text CHECK (color ~ '^#[0-9a-f]{6}$'),
    source   text NOT NULL,
    geom     geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX map_context_geom ON map_context USING gist (geom);
GRANT SELECT ON map_context TO onescreen_web;
