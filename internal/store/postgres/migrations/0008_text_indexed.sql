-- Schema version 8: the words follow the log on their own (indexer.go).
--
-- The indexer writes the words (bundle_text) in one transaction, and
-- event_fields, event_targets and the counts in another, both at once on
-- two connections: PostgreSQL runs each transaction's statements one
-- after the other in one process, and each is about half of the
-- indexer's work. text_indexed.size is how far bundle_text goes, as
-- indexed.size (0006) is how far event_fields and event_targets go, and
-- counted.size how far the action counts go (0005). A log without a row
-- has none of its words indexed.
CREATE TABLE text_indexed (
	log  bigint PRIMARY KEY REFERENCES logs (id),
	size bigint NOT NULL
);

-- The words of a database made before this were written with its fields.
INSERT INTO text_indexed (log, size) SELECT log, size FROM indexed;
