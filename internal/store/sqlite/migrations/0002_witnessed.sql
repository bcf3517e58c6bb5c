-- Schema version 2: cosigned checkpoints (store.Witnessed).
--
-- One row per log and size, never updated: the log's signed checkpoint
-- note with the cosignature lines of the witnesses that met its policy.
-- signed_at is when the log signed it, nanoseconds since the Unix epoch.

CREATE TABLE witnessed (
	log       INTEGER NOT NULL,
	size      INTEGER NOT NULL,
	signed_at INTEGER NOT NULL,
	note      BLOB NOT NULL,
	PRIMARY KEY (log, size)
) WITHOUT ROWID;
