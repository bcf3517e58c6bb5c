-- Schema version 4: cosigned checkpoints (store.Witnessed).
--
-- One row per log and size, never updated: the log's signed checkpoint
-- note with the cosignature lines of the witnesses that met its policy.
-- Every node witnesses the logs, so rows are only ever inserted, each
-- size once (ON CONFLICT DO NOTHING): an older one stored late never
-- hides a newer one, which is read as the largest size. signed_at is when
-- the log signed it, bigint nanoseconds since the Unix epoch, as
-- elsewhere.

CREATE TABLE witnessed (
	log       bigint NOT NULL REFERENCES logs (id),
	size      bigint NOT NULL,
	signed_at bigint NOT NULL,
	note      bytea NOT NULL,
	PRIMARY KEY (log, size)
);
