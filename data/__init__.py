"""The data layer: schema and migrations, typed keyword-only reads and writes over PostGIS, and the
reference data; it imports nothing from the layers above it."""
