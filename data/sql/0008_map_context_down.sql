DROP TABLE IF EXISTS map_context;
