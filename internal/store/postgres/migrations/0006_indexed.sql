-- Schema version 6: the search indexes follow the log (indexer.go).
--
-- A commit no longer writes event_fields, event_targets and bundle_text
-- (0003): the indexer of one node at a time per log does, many commits
-- at a time, in the transaction that adds the same events to the counts
-- (0005). indexed.size is how far the search indexes of the log go: the
-- events below it are indexed, exactly once. Searches read the events at
-- and past it from the log itself. A log without a row has none of its
-- events indexed.

CREATE TABLE indexed (
	log  bigint PRIMARY KEY REFERENCES logs (id),
	size bigint NOT NULL
);

-- The search indexes of a database made before this were written by its
-- commits: they cover every event.
INSERT INTO indexed (log, size) SELECT id, size FROM logs;
