-- Schema version 1: Trail's database as a new file gets it.
--
-- Outcomes are stored as small integers (0 success, 1 failure, 2 denied,
-- 3 error). Keys are laid out as schema.go describes: events of all logs
-- share one rowid table keyed log<<40 | seq, tiles are keyed by log, level
-- and index, and the segment-keyed indexes lead with seg = k >> 14.
--
-- Writes per event are kept sequential. A commit appends event bundles,
-- tiles and a checkpoint at the end of their key ranges, moves the log's
-- size and adds the actions no earlier event used; it maintains no index
-- and no count. The indexes (action, outcome, actor, ip, target, full-text
-- terms) and the counts (actions, rollup) are added by the indexer
-- (indexer.go), a segment at a time, sorted, so that they too grow at the
-- right edge. logs.posted_size records how far the segment-keyed indexes
-- got, logs.indexed_size how far all of them did, and logs.rolled_size how
-- far the rollup table's counts go.

CREATE TABLE logs (
	id               INTEGER PRIMARY KEY,
	name             TEXT NOT NULL UNIQUE,
	origin           TEXT NOT NULL,
	verifier_key     TEXT NOT NULL,
	created_at       INTEGER NOT NULL,
	size             INTEGER NOT NULL DEFAULT 0,
	last_received_at INTEGER NOT NULL DEFAULT 0,
	indexed_size     INTEGER NOT NULL DEFAULT 0,
	rolled_size      INTEGER NOT NULL DEFAULT 0,
	posted_size      INTEGER NOT NULL DEFAULT 0
);

-- Bundles of up to bundleMax consecutive events of one log, keyed by the
-- first one's key (bundle.go).
CREATE TABLE events (
	k    INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

-- Every action a log's committed events use, with how many of its events
-- below indexed_size do.
CREATE TABLE actions (
	log    INTEGER NOT NULL,
	action TEXT NOT NULL,
	count  INTEGER NOT NULL,
	PRIMARY KEY (log, action)
) WITHOUT ROWID;

CREATE TABLE tiles (
	k    INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

CREATE TABLE checkpoints (
	log       INTEGER NOT NULL,
	size      INTEGER NOT NULL,
	signed_at INTEGER NOT NULL,
	note      BLOB NOT NULL,
	PRIMARY KEY (log, size)
) WITHOUT ROWID;

-- API keys: the secret's SHA-256 only. scopes is comma-separated;
-- revoked_at is 0 while the key is valid.
CREATE TABLE keys (
	id         TEXT PRIMARY KEY,
	log        INTEGER NOT NULL REFERENCES logs (id),
	name       TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	hash       BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE idempotency (
	scope       TEXT NOT NULL,
	key         TEXT NOT NULL,
	log         INTEGER NOT NULL,
	fingerprint BLOB NOT NULL,
	receipts    BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- The segment-keyed indexes, filled by the indexer with posting lists
-- (postings.go): a row per value and complete segment, keyed by the
-- value's first event in the segment (k), whose ks lists the segment's
-- later events of that value. seg is k >> 14: the log and the seq's
-- segment, which leads each key so that rows are appended at the end of
-- the tree segment after segment, never scattered over it. An incomplete
-- segment's lists wait in posting_tail.
CREATE TABLE by_actor (
	seg      INTEGER NOT NULL,
	actor_id TEXT NOT NULL,
	k        INTEGER NOT NULL,
	ks       BLOB,
	PRIMARY KEY (seg, actor_id, k)
) WITHOUT ROWID;
CREATE TABLE by_ip (
	seg INTEGER NOT NULL,
	ip  TEXT NOT NULL,
	k   INTEGER NOT NULL,
	ks  BLOB,
	PRIMARY KEY (seg, ip, k)
) WITHOUT ROWID;
CREATE TABLE by_action (
	seg    INTEGER NOT NULL,
	action TEXT NOT NULL,
	k      INTEGER NOT NULL,
	ks     BLOB,
	PRIMARY KEY (seg, action, k)
) WITHOUT ROWID;
-- Only events that did not succeed (outcome code > 0).
CREATE TABLE by_outcome (
	seg     INTEGER NOT NULL,
	outcome INTEGER NOT NULL,
	k       INTEGER NOT NULL,
	ks      BLOB,
	PRIMARY KEY (seg, outcome, k)
) WITHOUT ROWID;
CREATE TABLE by_target (
	seg  INTEGER NOT NULL,
	type TEXT NOT NULL,
	id   TEXT NOT NULL,
	k    INTEGER NOT NULL,
	ks   BLOB,
	PRIMARY KEY (seg, type, id, k)
) WITHOUT ROWID;

-- The posting lists of index chunks that cover part of a segment, one
-- row per chunk and index (t: by_action 0, by_outcome 1, by_actor 2,
-- by_ip 3, by_target 4), keyed by the chunk's first key k, until the
-- segment is complete and they are merged into the index tables
-- (tail.go).
CREATE TABLE posting_tail (
	seg  INTEGER NOT NULL,
	t    INTEGER NOT NULL,
	k    INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (seg, t, k)
) WITHOUT ROWID;

-- The counts behind store.Rollup (rollup.go): per log, dimension (dim, the
-- constants in schema.go), hour and value, how many events below
-- rolled_size there are by outcome. hour is the event's time in whole
-- hours since the epoch (store.HourOf); the day rows of a dimension
-- (dim + 4) are keyed by their day's first hour. Only non-success events
-- with an ip count under the failed-ip dimension, which keeps it small.
-- Keys grow with time, so the indexer's upserts land near the right edge
-- of each dimension.
CREATE TABLE rollup (
	log       INTEGER NOT NULL,
	dim       INTEGER NOT NULL,
	hour      INTEGER NOT NULL,
	value     TEXT NOT NULL,
	n_total   INTEGER NOT NULL,
	n_failure INTEGER NOT NULL,
	n_denied  INTEGER NOT NULL,
	n_error   INTEGER NOT NULL,
	PRIMARY KEY (log, dim, hour, value)
) WITHOUT ROWID;

-- Holds words already split and lower-cased by Trail (derive.Text); the
-- ascii tokenizer only splits them at the spaces.
CREATE VIRTUAL TABLE events_fts USING fts5 (
	text, content='', detail=none, columnsize=0, tokenize='ascii'
);

-- How the full-text index merges the segment each index chunk adds: 16
-- at a time (FTS5's default is 4), and at once only past 32. Merging
-- fewer times cut its insert CPU by 18 % over 1M workload events (7.8 ->
-- 6.4 s, chunks of 1,500), while a two-word query still took about
-- 0.3 ms. Its segments' leaves are up to 8,000 bytes (FTS5's default is
-- 4,050): one to a database page instead of two, fewer rows to write and
-- merge; AppendBatch(1000) ran 2-8 % faster over three same-minute
-- alternations.
INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 16);
INSERT INTO events_fts (events_fts, rank) VALUES ('crisismerge', 32);
INSERT INTO events_fts (events_fts, rank) VALUES ('pgsz', 8000);
