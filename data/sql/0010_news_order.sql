-- OneScreen schema, revision 0010: walls learn of new incidents in commit order.
--
-- A wall asks "which critical incidents are new since I last asked". Ids are handed out when a
-- row is written, not when its transaction commits: while the rules pass holds id 100 in its
-- transaction, an operator's action can commit id 101, and a wall that took 101 as its mark
-- never sees 100. So each row now records the transaction that wrote it, and a wall asks for
-- the rows of transactions that have ended since it last asked (pg_snapshot_xmin): every row
-- is found exactly once, in whatever order the transactions commit. A transaction still open
-- delays the news of later ones until it ends; it never loses them.
--
-- The columns are added without a default and then given one, so the tables are not rewritten:
-- rows written before this revision keep NULL (their news is long told).
ALTER TABLE incident ADD COLUMN written_xid xid8;
ALTER TABLE incident ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX incident_written_xid_idx ON incident (written_xid) WHERE written_xid IS NOT NULL;

-- only what makes an incident news again (reopened, escalated) is indexed: the few events a
-- wall asks about, not every acknowledgement and note
ALTER TABLE incident_event ADD COLUMN written_xid xid8;
ALTER TABLE incident_event ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX incident_event_news_idx ON incident_event (written_xid)
    WHERE kind IN ('reopened', 'escalated') AND written_xid IS NOT NULL;
