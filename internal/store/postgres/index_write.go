package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/derive"
	"github.com/trail-audit/trail/internal/store"
)

// indexRows are the rows of event_fields, event_targets and bundle_text
// (0003_indexes.sql) of some events, and the counts they add, as columns
// to send with unnest: what the indexer (indexer.go) and ResetIndex
// write.
type indexRows struct {
	// event_fields
	logs, seqs                             []int64
	actions, outcomes, actors, ips, tTypes []string
	tIDs                                   []string
	// event_targets: the targets of an event after its first
	mLogs, mSeqs []int64
	mTypes, mIDs []string
	text         textRows
	// buf is derive.EachWord's, kept from event to event.
	buf []byte
	// counts are the counts the events add (addCounts).
	counts map[countKey]store.Counts
}

// add adds the rows of e, an event of log.
func (r *indexRows) add(log int64, e *event.Event) {
	r.addFields(log, e)
	r.addText(log, e)
}

// addFields adds the rows of event_fields and event_targets of e, an
// event of log.
func (r *indexRows) addFields(log int64, e *event.Event) {
	var first event.Target
	var buf [4]event.Target
	seen := buf[:0]
	for _, t := range e.Targets {
		t := event.Target{Type: t.Type, ID: t.ID}
		if slices.Contains(seen, t) {
			continue
		}
		if seen = append(seen, t); len(seen) == 1 {
			first = t
			continue
		}
		r.mLogs, r.mSeqs, r.mTypes, r.mIDs = append(r.mLogs, log), append(r.mSeqs, e.Seq), append(r.mTypes, t.Type), append(r.mIDs, t.ID)
	}
	r.logs, r.seqs = append(r.logs, log), append(r.seqs, e.Seq)
	r.actions, r.outcomes, r.actors, r.ips = append(r.actions, e.Action), append(r.outcomes, string(e.Outcome)), append(r.actors, e.Actor.ID), append(r.ips, e.Source.IP)
	r.tTypes, r.tIDs = append(r.tTypes, first.Type), append(r.tIDs, first.ID)
}

// addText adds the words of e, an event of log, to the rows of
// bundle_text.
func (r *indexRows) addText(log int64, e *event.Event) {
	r.text.start(log, e.Seq)
	r.buf = derive.EachWord(r.buf, e, r.text.word)
}

// addActionCount adds e, an event of log, to the count of its action
// over all time, which Actions reads.
func (r *indexRows) addActionCount(log int64, e *event.Event) {
	r.addCount(log, derive.ActionCount(e), store.Counts{Total: 1})
}

// addRollup adds what e, an event of log, adds to the hourly and daily
// counts, which Rollup reads.
func (r *indexRows) addRollup(log int64, e *event.Event) {
	c := derive.Tally(e)
	derive.Counts(e, func(k store.CountKey) { r.addCount(log, k, c) })
}

// addCounts adds what e, an event of log, adds to all counts.
func (r *indexRows) addCounts(log int64, e *event.Event) {
	r.addRollup(log, e)
	r.addActionCount(log, e)
}

func (r *indexRows) addCount(log int64, k store.CountKey, c store.Counts) {
	if r.counts == nil {
		r.counts = map[countKey]store.Counts{}
	}
	ck := countKey{log, k}
	v := r.counts[ck]
	v.Add(c)
	r.counts[ck] = v
}

// write writes the rows in tx, and then runs the statements of q with
// them, in one more round trip: event_fields by COPY, which PostgreSQL
// inserts many rows at a time (a WAL record per page rather than per
// row), and the others in one pipeline.
func (r *indexRows) write(ctx context.Context, tx pgx.Tx, q *pgx.Batch) error {
	if len(r.seqs) > 0 {
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(r.fieldsCopy()), copyFields); err != nil {
			return fmt.Errorf("event_fields: %w", err)
		}
	}
	var b pgx.Batch
	r.queue(&b)
	if q != nil {
		b.QueuedQueries = append(b.QueuedQueries, q.QueuedQueries...)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// queue queues in b the statements that write the rows but event_fields.
func (r *indexRows) queue(b *pgx.Batch) {
	if len(r.mSeqs) > 0 {
		b.Queue(`INSERT INTO event_targets (log, seq, type, id) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
			ON CONFLICT DO NOTHING`, r.mLogs, r.mSeqs, r.mTypes, r.mIDs)
	}
	r.text.queue(b)
	queueCounts(b, r.counts)
}

// copyFields is the COPY that write sends the rows of event_fields with,
// in COPY's binary format (fieldsCopy).
const copyFields = "COPY event_fields (log, seq, action, outcome, actor, ip, target_type, target_id) FROM STDIN (FORMAT binary)"

// fieldsCopy returns the rows of event_fields as COPY's binary format
// has them: a header, then for each row its number of fields (int16) and
// each field's length (int32) and bytes (a bigint's 8, big-endian, a
// text's UTF-8), then -1. Built by hand rather than by pgx's CopyFrom,
// which boxes each value in an interface.
func (r *indexRows) fieldsCopy() []byte {
	n := 19 + 2
	for i := range r.seqs {
		n += 2 + 8*4 + 2*8 + len(r.actions[i]) + len(r.outcomes[i]) + len(r.actors[i]) + len(r.ips[i]) + len(r.tTypes[i]) + len(r.tIDs[i])
	}
	b := make([]byte, 0, n)
	b = append(b, "PGCOPY\n\xff\r\n\x00"...)
	b = binary.BigEndian.AppendUint32(b, 0) // flags
	b = binary.BigEndian.AppendUint32(b, 0) // header extension
	for i := range r.seqs {
		b = binary.BigEndian.AppendUint16(b, 8)
		for _, v := range [2]int64{r.logs[i], r.seqs[i]} {
			b = binary.BigEndian.AppendUint32(b, 8)
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
		for _, v := range [6]string{r.actions[i], r.outcomes[i], r.actors[i], r.ips[i], r.tTypes[i], r.tIDs[i]} {
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// textRows are bundle_text rows: for each block of textBlock events, the
// words of its events, each with the positions of the events that hold
// it (seq - first_seq + 1). Blocks of events rather than bundles: a word
// common to many events is then stored, and under the GIN index filed,
// once for many more of them.
type textRows struct {
	logs, firsts []int64
	docs         []tsvector
	cur          struct {
		log, first int64
		seq        int64 // the event whose words are being added
		// at holds, for each word, its index in order and masks;
		// masks[i] has bit k set for the event at first+k.
		at    map[string]int
		order []string
		masks [][textBlock / 64]uint64
		size  int
	}
	sorted []int // the order of cur's words in the row (flush)
}

// textBlock is how many consecutive events a bundle_text row covers (its
// first_seq a multiple of it), at most: a tsvector keeps up to 256
// positions of a word.
const textBlock = 256

// textStart is the first seq of the block that holds event seq. Rows
// written before blocks of textBlock covered a bundle each, at multiples
// of bundleSize: a block's start is at or below theirs, and positions
// count from each row's own first_seq.
func textStart(seq int64) int64 { return seq &^ (textBlock - 1) }

// maxTextRow is about how many bytes of words and positions a bundle_text
// row holds before the next event's words go in a row of their own: a
// tsvector holds at most 1 MB.
const maxTextRow = 512 << 10

// start readies t for the words of event seq of log (word).
func (t *textRows) start(log, seq int64) {
	c := &t.cur
	first := textStart(seq)
	if c.at == nil || c.log != log || c.first != first || c.size > maxTextRow {
		t.flush()
		c.log, c.first = log, first
		if c.at == nil {
			c.at = make(map[string]int, 1024)
		}
	}
	c.seq = seq
}

// word adds w, a word of the event start named, cut to maxWord bytes.
// A word given twice is added once.
func (t *textRows) word(w []byte) {
	c := &t.cur
	if len(w) > maxWord {
		w = []byte(cutWord(string(w), maxWord))
	}
	k := c.seq - c.first
	i, ok := c.at[string(w)]
	if !ok {
		i = len(c.order)
		key := string(w)
		c.at[key] = i
		c.order = append(c.order, key)
		c.masks = append(c.masks, [textBlock / 64]uint64{})
		c.size += len(w) + 4
	}
	if m := &c.masks[i][k/64]; *m&(1<<(k%64)) == 0 {
		*m |= 1 << (k % 64)
		c.size += 4
	}
}

// flush ends the row being built.
func (t *textRows) flush() {
	c := &t.cur
	if len(c.order) == 0 {
		return
	}
	// In the tsvector's order, so that the server need not sort them.
	t.sorted = t.sorted[:0]
	for i := range c.order {
		t.sorted = append(t.sorted, i)
	}
	slices.SortFunc(t.sorted, func(a, b int) int { return strings.Compare(c.order[a], c.order[b]) })
	doc := appendTSVector(make(tsvector, 0, c.size+4), t.sorted, c.order, c.masks)
	t.logs, t.firsts, t.docs = append(t.logs, c.log), append(t.firsts, c.first), append(t.docs, doc)
	c.order, c.masks, c.size = c.order[:0], c.masks[:0], 0
	clear(c.at)
}

// queue queues the statement that inserts the rows.
func (t *textRows) queue(q *pgx.Batch) {
	t.flush()
	if len(t.logs) == 0 {
		return
	}
	q.Queue(`INSERT INTO bundle_text (log, first_seq, words) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::tsvector[])`,
		t.logs, t.firsts, t.docs)
}

// countKey is a store.CountKey of one log.
type countKey struct {
	log int64
	store.CountKey
}

// queueCounts queues the statement that adds counts to the stored ones.
// The keys go in a fixed order, so that two commits adding to the same
// counts (which the logs' locks already keep apart) could not deadlock.
func queueCounts(q *pgx.Batch, counts map[countKey]store.Counts) {
	if len(counts) == 0 {
		return
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.log, b.log), cmp.Compare(a.Dim, b.Dim), cmp.Compare(a.Span, b.Span),
			cmp.Compare(a.Hour, b.Hour), cmp.Compare(a.Value, b.Value))
	})
	n := len(keys)
	logs, hours := make([]int64, n), make([]int64, n)
	dims, spans := make([]int16, n), make([]int16, n)
	values := make([]string, n)
	total, failure, denied, errs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, k := range keys {
		c := counts[k]
		logs[i], dims[i], spans[i], hours[i], values[i] = k.log, int16(k.Dim), int16(k.Span), k.Hour, k.Value
		total[i], failure[i], denied[i], errs[i] = c.Total, c.Failure, c.Denied, c.Error
	}
	q.Queue(`INSERT INTO counts (log, dim, span, hour, value, total, failure, denied, error)
		SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::smallint[], $4::bigint[], $5::text[],
			$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
		ON CONFLICT (log, dim, span, hour, value) DO UPDATE SET
			total = counts.total + excluded.total, failure = counts.failure + excluded.failure,
			denied = counts.denied + excluded.denied, error = counts.error + excluded.error`,
		logs, dims, spans, hours, values, total, failure, denied, errs)
}

// maxWord is how many bytes of a word bundle_text keeps: a tsvector's
// lexeme holds at most 2047 bytes, and free text may hold longer words
// (a reason, metadata). Search checks the events found through a cut
// word again against their text.
const maxWord = 1000

// cutWord returns w cut to at most n bytes, at a rune boundary.
func cutWord(w string, n int) string {
	if len(w) <= n {
		return w
	}
	for n > 0 && !utf8.RuneStart(w[n]) {
		n--
	}
	return w[:n]
}
