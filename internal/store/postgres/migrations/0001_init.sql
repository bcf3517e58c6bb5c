-- Schema version 1: Trail's first PostgreSQL layout.
--
-- Times are bigint nanoseconds since the Unix epoch (UTC), not
-- timestamptz: PostgreSQL keeps microseconds only, and Trail's receipt
-- and signing times carry nanoseconds that are part of the signed and
-- hashed data.
--
-- A commit appends a log's events, upserts the tiles they changed, adds a
-- checkpoint and moves logs.size, all in one transaction that first locks
-- the log's row (Commit in write.go): the row is what serialises the
-- writers of one log, whichever node they run on. That commit checks the
-- log exists, so event bundles, tiles and checkpoints carry no foreign
-- key, whose check would cost a lookup per row.

CREATE TABLE logs (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name             text NOT NULL UNIQUE,
	origin           text NOT NULL,
	verifier_key     text NOT NULL,
	created_at       bigint NOT NULL,
	size             bigint NOT NULL DEFAULT 0,
	last_received_at bigint NOT NULL DEFAULT 0
);

-- The events, in bundles of 16: the row whose first_seq is a multiple of
-- 16 holds the events first_seq to first_seq+15, as their canonical
-- forms (canon.Append, the very bytes hashed into the log as their
-- leaves) one after the other, each preceded by its length as a uvarint
-- (bundle.go). A commit appends its events to the bundle the commit
-- before it left part full (data = data || new), and adds the bundles
-- after it. A row per event would spend more on its header and its key
-- than on the event; 16 events compress together (lz4) and keep a read
-- of one event to one small row.
CREATE TABLE event_bundles (
	log       bigint NOT NULL,
	first_seq bigint NOT NULL,
	data      bytea NOT NULL,
	PRIMARY KEY (log, first_seq)
);

-- lz4 compresses and decompresses several times faster than pglz, the
-- default. It needs PostgreSQL 14 or newer, built with it; elsewhere the
-- column keeps pglz, which holds the same data. (EXECUTE: PostgreSQL 13
-- cannot even parse SET COMPRESSION.)
DO $$
BEGIN
	IF current_setting('server_version_num')::int >= 140000 THEN
		EXECUTE 'ALTER TABLE event_bundles ALTER COLUMN data SET COMPRESSION lz4';
	END IF;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
	NULL;
END $$;

-- The Merkle tiles (tlog-tiles, height 8), partial ones included: a
-- commit replaces a tile's data with the wider version.
CREATE TABLE tiles (
	log   bigint NOT NULL,
	level integer NOT NULL,
	idx   bigint NOT NULL,
	data  bytea NOT NULL,
	PRIMARY KEY (log, level, idx)
);

CREATE TABLE checkpoints (
	log       bigint NOT NULL,
	size      bigint NOT NULL,
	signed_at bigint NOT NULL,
	note      bytea NOT NULL,
	PRIMARY KEY (log, size)
);

-- API keys: the secret's SHA-256 only; revoked_at is 0 while the key is
-- valid.
CREATE TABLE keys (
	id         text PRIMARY KEY,
	log        bigint NOT NULL REFERENCES logs (id),
	name       text NOT NULL,
	scopes     text[] NOT NULL,
	hash       bytea NOT NULL,
	created_at bigint NOT NULL,
	revoked_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX keys_log ON keys (log, created_at, id);

CREATE TABLE idempotency (
	scope       text NOT NULL,
	key         text NOT NULL,
	log         bigint NOT NULL REFERENCES logs (id),
	fingerprint bytea NOT NULL,
	receipts    bytea NOT NULL,
	created_at  bigint NOT NULL,
	PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);
