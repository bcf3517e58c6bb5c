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

-- counted.size is now how far the counts of actions over all time go,
-- which Actions reads, and counted.rolled how far the hourly and daily
-- counts go, which Rollup reads: the indexer rolls the events up into
-- those less often (once a second, or every 16,384 events), so that a
-- count is rewritten fewer times.
ALTER TABLE counted ADD COLUMN rolled bigint NOT NULL DEFAULT 0;
UPDATE counted SET rolled = size;

-- From this version on, a bundle_text row holds the words of a block of
-- up to 256 consecutive events (its first_seq a multiple of 256), not of
-- a bundle of 16: a word common to many events is stored, and filed
-- under the GIN index, once per block. Positions count from each row's
-- first_seq as before, so the rows written per bundle stay valid.
