-- Schema version 2: secrets (store.Secrets).
--
-- One row per named secret, never updated: data is what the caller gave,
-- sealed by it (a log's signing key is sealed with the master key, which
-- is never stored here). created_at is bigint nanoseconds since the Unix
-- epoch, as elsewhere.

CREATE TABLE secrets (
	name       text PRIMARY KEY,
	data       bytea NOT NULL,
	created_at bigint NOT NULL
);
