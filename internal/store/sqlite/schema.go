package sqlite

// The layout of Trail's database. Its tables are created by the numbered
// migrations in migrations/ (migrate.go); this file holds the keys and
// codes the SQL of those migrations stores.

// applicationID marks a database file as Trail's ("TRAL").
const applicationID = 0x5452414c

// Key layout. Events of all logs share one rowid table whose key is
// log<<seqBits | seq, so a log's events are one contiguous, append-ordered
// key range, every secondary index ends in (log, seq) for free, and a time
// range is a key range because received_at never decreases along seq.
const (
	seqBits = 40 // up to 2^40 events per log
	maxLog  = 1<<(63-seqBits) - 1
	// Tiles: log<<tileLogShift | level<<tileLevelShift | index.
	tileLevelShift = 40
	tileLogShift   = 43
	maxTileLog     = 1<<(63-tileLogShift) - 1
)

func eventKey(log, seq int64) int64 { return log<<seqBits | seq }

// segBits sizes the segments of the background indexes: 16384 events.
// Entries are keyed (segment, value, k), so indexing appends at the end of
// each index however large the log grows, and a lookup costs one seek per
// segment.
const segBits = 14

func segOf(k int64) int64 { return k >> segBits }

func tileKey(log int64, level int, index int64) int64 {
	return log<<tileLogShift | int64(level)<<tileLevelShift | index
}

// Rollup dimensions (the rollup table's dim column). Outcome counts are
// kept by hour only; the others by hour and again by UTC day, under dim
// byDay+d, whose hour is the day's first. Day rows answer top lists over
// whole days from far fewer rows: a day holds about as many actors as one
// of its busy hours.
const (
	dimOutcome  = 0 // value '': every event, by outcome
	dimAction   = 1
	dimActor    = 2 // actor id
	dimFailedIP = 3 // source ip of events that did not succeed
	byDay       = 4
)

// postingIndexes are the segment-keyed indexes and their value columns,
// numbered as store.Index and posting_tail's t column.
var postingIndexes = []struct{ table, cols string }{
	{"by_action", "action"},
	{"by_outcome", "outcome"},
	{"by_actor", "actor_id"},
	{"by_ip", "ip"},
	{"by_target", "type, id"},
}
