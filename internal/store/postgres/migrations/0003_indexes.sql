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

-- One row per event: the fields searches filter on. outcome and ip are
-- '' when the event has none (ip), and the partial indexes leave out
-- what no search asks for (successes, events without an ip).
CREATE TABLE event_index (
	log         bigint NOT NULL,
	seq         bigint NOT NULL,
	received_at bigint NOT NULL,
	action      text COLLATE "C" NOT NULL,
	outcome     text COLLATE "C" NOT NULL,
	actor       text COLLATE "C" NOT NULL,
	ip          text COLLATE "C" NOT NULL,
	PRIMARY KEY (log, seq)
);
CREATE INDEX event_index_actor ON event_index (log, actor, seq);
CREATE INDEX event_index_action ON event_index (log, action, seq);
CREATE INDEX event_index_ip ON event_index (log, ip, seq) WHERE ip <> '';
CREATE INDEX event_index_outcome ON event_index (log, outcome, seq) WHERE outcome <> 'success';
CREATE INDEX event_index_received_at ON event_index (log, received_at, seq);

-- Each distinct (type, id) target of an event.
CREATE TABLE event_targets (
	log  bigint NOT NULL,
	type text COLLATE "C" NOT NULL,
	id   text COLLATE "C" NOT NULL,
	seq  bigint NOT NULL,
	PRIMARY KEY (log, type, id, seq)
);
CREATE INDEX event_targets_id ON event_targets (log, id, seq);

-- Each distinct word of an event's searchable text (derive.Text).
CREATE TABLE event_words (
	log  bigint NOT NULL,
	word text COLLATE "C" NOT NULL,
	seq  bigint NOT NULL,
	PRIMARY KEY (log, word, seq)
);

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
