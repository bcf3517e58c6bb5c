-- Schema version 3: search indexes and counts (store.Indexes).
--
-- All of it is derived from the events, and written by the commit that
-- appends them, in the same transaction (index_write.go): the indexes
-- and counts of a log always cover exactly its size, on every node.
--
-- Strings compared or sorted are COLLATE "C": equality and order are
-- those of their bytes, as Trail's other backends have them, whatever
-- the database's default collation, and a LIKE 'prefix%' can use their
-- indexes.
--
-- The indexes are kept small rather than exact: a search reads the
-- events its index finds and checks each against every filter of the
-- query (search.go), so an index may find more than matches.

-- One row per event, with no key of its own: the fields searches filter
-- on. ip is '' when the event has none; target_type and target_id are
-- those of the event's first target, '' when it has none (its others
-- are in event_targets). Each btree index ends in a bucket of seqs
-- rather than the seq, so that the entries of one value and bucket are
-- one deduplicated entry (a few bytes an event), and a search reads the
-- newest bucket first (ORDER BY (seq >> 16) DESC, seq DESC) and sorts
-- it: actions, which are few and common, take buckets of 1024 seqs, the
-- others of 65536. The partial indexes leave out what no search asks
-- for: events without an ip or a target, and successes (the outcome
-- index holds the others). BRIN indexes the seq and receipt time, which
-- grow with the table.
CREATE TABLE event_fields (
	log         bigint NOT NULL,
	seq         bigint NOT NULL,
	received_at bigint NOT NULL,
	action      text COLLATE "C" NOT NULL,
	outcome     text COLLATE "C" NOT NULL,
	actor       text COLLATE "C" NOT NULL,
	ip          text COLLATE "C" NOT NULL,
	target_type text COLLATE "C" NOT NULL,
	target_id   text COLLATE "C" NOT NULL
);
CREATE INDEX event_fields_actor ON event_fields (log, actor, (seq >> 16));
CREATE INDEX event_fields_action ON event_fields (log, action, (seq >> 10));
CREATE INDEX event_fields_target ON event_fields (log, target_id, (seq >> 16)) WHERE target_id <> '';
CREATE INDEX event_fields_ip ON event_fields (log, ip, (seq >> 16)) WHERE ip <> '';
CREATE INDEX event_fields_outcome ON event_fields (log, outcome, (seq >> 10)) WHERE outcome <> 'success';
CREATE INDEX event_fields_seq ON event_fields USING brin (seq);
CREATE INDEX event_fields_received_at ON event_fields USING brin (received_at);

-- Each distinct (type, id) target of an event after its first, which
-- event_fields holds: most events have one target, so this table stays
-- small, and every target is found.
CREATE TABLE event_targets (
	log  bigint NOT NULL,
	seq  bigint NOT NULL,
	type text COLLATE "C" NOT NULL,
	id   text COLLATE "C" NOT NULL,
	PRIMARY KEY (log, seq, type, id)
);
CREATE INDEX event_targets_id ON event_targets (log, id, seq);

-- The distinct words of the searchable text (derive.Text) of the events
-- of a bundle, as a tsvector whose positions are the events' places in
-- the bundle (seq - first_seq + 1): the GIN index finds the bundles that
-- hold a word, or a word starting with a prefix, and the positions say
-- which of their events do (Postings). A bundle that two commits filled
-- has a row of each, and so may a bundle whose words would not fit in a
-- tsvector (1 MB) in one row; searches read each bundle once. A lexeme
-- holds at most 2047 bytes: a longer word is kept cut to its first 1000
-- bytes (cutWord), and a search for a long word looks up that start as a
-- prefix, then checks each event found against its text.
CREATE TABLE bundle_text (
	log       bigint NOT NULL,
	first_seq bigint NOT NULL,
	words     tsvector NOT NULL
);

-- lz4 where the server has it, as for event_bundles (0001_init.sql).
DO $$
BEGIN
	IF current_setting('server_version_num')::int >= 140000 THEN
		EXECUTE 'ALTER TABLE bundle_text ALTER COLUMN words SET COMPRESSION lz4';
	END IF;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
	NULL;
END $$;
CREATE INDEX bundle_text_seq ON bundle_text (log, first_seq);
CREATE INDEX bundle_text_words ON bundle_text USING gin (words);

-- The counts behind Rollup and Actions, keyed as store.CountKey: dim is
-- a store.CountDim, span a store.Span, hour the first hour of the span
-- (0 for all time). Each commit adds its events to them.
CREATE TABLE counts (
	log     bigint NOT NULL,
	dim     smallint NOT NULL,
	span    smallint NOT NULL,
	hour    bigint NOT NULL,
	value   text COLLATE "C" NOT NULL,
	total   bigint NOT NULL,
	failure bigint NOT NULL,
	denied  bigint NOT NULL,
	error   bigint NOT NULL,
	PRIMARY KEY (log, dim, span, hour, value)
);
