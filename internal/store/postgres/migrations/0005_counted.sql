-- Schema version 5: the counts follow the log (counter.go).
--
-- A commit no longer adds its events to the counts table (0003): a
-- follower does, many commits at a time, so that a count touched by
-- thousands of events is written once rather than once per commit.
-- counted.size is how far the counts of the log go: the events below it
-- are counted, exactly once. One follower at a time counts a log, on any
-- node (a transaction-level advisory lock on the log), and moves its
-- size in the transaction that adds its counts. A log without a row has
-- none of its events counted.

CREATE TABLE counted (
	log  bigint PRIMARY KEY REFERENCES logs (id),
	size bigint NOT NULL
);

-- The counts of a database made before this were written by its commits:
-- they cover every event.
INSERT INTO counted (log, size) SELECT id, size FROM logs;
