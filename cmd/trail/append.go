package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
)

// batchSize is how many events one AppendBatch commits.
const batchSize = 10000

// maxLine bounds one NDJSON line. Stored events are under 64 KiB in
// canonical form; the rest leaves room for whitespace and escapes.
const maxLine = 1 << 20

// appendCommand appends events from stdin or from flags.
type appendCommand struct {
	env  *env
	db   dbFlags
	json bool
	ev   eventFlags
}

// eventFlags describe one event on the command line.
type eventFlags struct {
	actor, actorType, actorName, actorEmail, actorRole string
	action, outcome, reason, time                      string
	targets                                            []string
	ip, userAgent, requestID, traceID, metadata        string
}

// eventFlagOf maps an event field, as *event.Error names it, to the flag
// that sets it.
var eventFlagOf = map[string]string{
	"actor.id": "actor", "actor.type": "actor-type", "actor.name": "actor-name",
	"actor.email": "actor-email", "actor.role": "actor-role", "action": "action",
	"outcome": "outcome", "reason": "reason", "time": "time", "targets": "target",
	"source.ip": "ip", "source.user_agent": "user-agent", "request_id": "request-id",
	"trace_id": "trace-id", "metadata": "metadata",
}

func (c *appendCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("append", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.BoolVar(&c.json, "json", false, "print one JSON receipt per event, as the API answers: {\"id\",\"seq\"}")
	f := &c.ev
	fs.StringVar(&f.actor, "actor", "", "actor `ID` (who did it); giving it reads no stdin")
	fs.StringVar(&f.actorType, "actor-type", "", "actor `TYPE`: user, service, system or anonymous")
	fs.StringVar(&f.actorName, "actor-name", "", "actor display `NAME`")
	fs.StringVar(&f.actorEmail, "actor-email", "", "actor `EMAIL`")
	fs.StringVar(&f.actorRole, "actor-role", "", "actor `ROLE`")
	fs.StringVar(&f.action, "action", "", "`ACTION`, dotted lower-case words such as user.login")
	fs.Func("target", "`TYPE:ID` of an entity acted on (repeatable)", func(s string) error {
		f.targets = append(f.targets, s)
		return nil
	})
	fs.StringVar(&f.outcome, "outcome", "", "`OUTCOME`: success (the default), failure, denied or error")
	fs.StringVar(&f.reason, "reason", "", "`TEXT` saying why, for failures and denials")
	fs.StringVar(&f.time, "time", "", "when it happened, RFC 3339 `TIME` (default: when Trail receives it)")
	fs.StringVar(&f.ip, "ip", "", "source `IP` address")
	fs.StringVar(&f.userAgent, "user-agent", "", "source user `AGENT`")
	fs.StringVar(&f.requestID, "request-id", "", "request `ID`")
	fs.StringVar(&f.traceID, "trace-id", "", "trace `ID`")
	fs.StringVar(&f.metadata, "metadata", "", "`JSON` object of extra details")
	return fs
}

func (c *appendCommand) Usage() string {
	return usage(c.flagSet(), "trail append [flags] < events.ndjson\n       trail append --actor ID --action ACTION [flags]", `
Append adds events to the log. It reads NDJSON from stdin, one JSON event
per line (blank lines are skipped), or, when any of the event flags
(--actor, --action, --target, ...) is given, appends the one event that
they describe.

Every line is decoded and validated before anything is stored, so a bad
line stores nothing; the error names its line and field, as in
"line 3: actor.id: required". The events are then committed in batches of
10,000 lines. Each batch is atomic, and each is durable when its receipts
print. If a commit fails midway (disk full, interrupted), the batches before
it stay stored and trail says which lines they hold.

Each appended event prints its seq and id: as a table on a terminal,
"seq<TAB>id" lines otherwise, or JSON receipts with --json.

An event is a JSON object with the fields actor {id, type, name, email,
role}, action, targets [{type, id, name}], outcome, reason, time, source
{ip, user_agent}, request_id, trace_id, changes {before, after} and
metadata. actor.id and action are required; Trail assigns id, seq, log
and received_at.`, `
  trail append --actor alice --action user.login --ip 192.0.2.7
  trail append --actor admin --action user.delete --target user:bob --reason "left the company"
  echo '{"actor":{"id":"alice"},"action":"document.read","targets":[{"type":"document","id":"d1"}]}' | trail append
  trail append --json < events.ndjson`)
}

func (c *appendCommand) Run(ctx context.Context, args []string) error {
	fs := c.flagSet()
	if err := noArgs(fs, args); err != nil {
		return err
	}
	fromFlags := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data", "store", "master-key-file", "log", "json", "server", "key":
		default:
			fromFlags = true
		}
	})
	var one event.Event
	if fromFlags {
		b, err := c.ev.json()
		if err != nil {
			return err
		}
		if one, err = event.Decode(b); err == nil {
			err = trail.CheckAppAction(one.Action)
		}
		if err != nil {
			return flagError(err)
		}
	} else if c.env.stdinTTY {
		return usagef("no events: pipe NDJSON events to stdin, or describe one with --actor and --action")
	}

	var l batchAppender
	cl, err := c.db.client()
	if err != nil {
		return err
	}
	if cl != nil {
		// The log's origin and size only label the output. A server
		// that keeps /v1/log from append-only keys answers 403: append
		// without them then.
		info, err := cl.Log(ctx)
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden {
			info, err = api.LogInfo{Origin: c.db.server}, nil
		}
		if err != nil {
			return err
		}
		l = &remoteLog{c: cl, name: info.Origin, size: info.TreeSize}
	} else {
		db, local, err := c.db.open(ctx, false)
		if err != nil {
			return err
		}
		defer db.Close()
		l = localLog{local}
	}
	out := newReceiptWriter(c.env, c.json)
	if fromFlags {
		r, err := l.Append(ctx, one)
		if err != nil {
			return flagError(err)
		}
		out.begin(r.Seq)
		return out.write([]api.Receipt{r})
	}
	return c.fromStdin(ctx, l, out)
}

// fromStdin appends the NDJSON events of stdin: first it validates every
// line, then it commits them in batches. A copy of the input is kept (in
// memory, then in a temporary file) for the second pass, unless stdin is a
// regular file that can be read again.
func (c *appendCommand) fromStdin(ctx context.Context, l batchAppender, out *receiptWriter) error {
	in := c.env.stdin
	var again func() (io.Reader, error)
	if f, ok := in.(*os.File); ok && isRegular(f) {
		start, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		again = func() (io.Reader, error) {
			// Only what the first pass read and checked: lines added
			// to the file since are not appended.
			end, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			if _, err := f.Seek(start, io.SeekStart); err != nil {
				return nil, err
			}
			return io.LimitReader(f, end-start), nil
		}
	} else {
		sp := &spool{limit: 16 << 20}
		defer sp.close()
		in = io.TeeReader(in, sp)
		again = sp.reader
	}

	now := c.env.now()
	// Checking a large input takes a while: the lines checked so far.
	check := newProgress(c.env, "check")
	defer check.clear()
	n, err := readEvents(in, func(line, _ int, ev *event.Event) error {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		check.update(int64(line), -1, "lines checked")
		err := ev.Prepare(now, event.Limits{})
		if err == nil {
			err = canon.CheckSize(ev, event.Limits{})
		}
		if err != nil {
			return &lineError{line: line, err: err}
		}
		return nil
	})
	check.clear()
	if err != nil {
		return fmt.Errorf("%w (nothing was stored)", err)
	}
	if n == 0 {
		fmt.Fprintln(c.env.stderr, "no events on stdin")
		return nil
	}

	r, err := again()
	if err != nil {
		return fmt.Errorf("read stdin again: %w (nothing was stored)", err)
	}
	bar := newProgress(c.env, "append")
	if c.env.stdoutTTY {
		bar = nil // the receipts show the progress
	}
	defer bar.clear()
	out.begin(l.Size() + int64(n) - 1)
	var (
		size, maxBytes = l.batchSize()
		batch          = make([]event.Event, 0, min(n, size))
		lines          = make([]int, 0, min(n, size))
		batchBytes     int   // of the lines in batch
		stored         int   // events committed
		lastLine       int   // line of the last committed event
		firstSeq       int64 // seq of the first committed event
	)
	commit := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %s, lines %d and later are not", storedLines(stored, lastLine, firstSeq), lines[0])
		}
		rs, err := l.AppendBatch(ctx, batch)
		if err != nil {
			var ve *event.Error
			if errors.As(err, &ve) && ve.Index >= 0 && ve.Index < len(lines) {
				err = &lineError{line: lines[ve.Index], err: &event.Error{Index: -1, Field: ve.Field, Reason: ve.Reason}}
			}
			switch {
			case ctx.Err() != nil:
				return fmt.Errorf("interrupted while committing lines %d-%d, which may or may not be stored; %s before them", lines[0], lines[len(lines)-1], storedLines(stored, lastLine, firstSeq))
			case errors.Is(err, trail.ErrOutcomeUnknown):
				return fmt.Errorf("%w; lines %d-%d may or may not be stored (search for them before appending them again); %s before them", err, lines[0], lines[len(lines)-1], storedLines(stored, lastLine, firstSeq))
			case stored == 0:
				return fmt.Errorf("%w (nothing was stored)", err)
			}
			return fmt.Errorf("%w: %s; lines %d and later are not", err, storedLines(stored, lastLine, firstSeq), lines[0])
		}
		if stored == 0 {
			firstSeq = rs[0].Seq
		}
		stored += len(rs)
		lastLine = lines[len(lines)-1]
		bar.update(int64(stored), int64(n), "")
		batch, lines, batchBytes = batch[:0], lines[:0], 0
		if err := out.write(rs); err != nil {
			// Stored all the same: say what, so that they are not
			// appended again.
			return fmt.Errorf("write receipts: %w; %s", err, storedLines(stored, lastLine, firstSeq))
		}
		return nil
	}
	_, err = readEvents(r, func(line, n int, ev *event.Event) error {
		if len(batch) > 0 && batchBytes+n > maxBytes {
			if err := commit(); err != nil {
				return err
			}
		}
		batch = append(batch, *ev)
		lines = append(lines, line)
		batchBytes += n
		if len(batch) == size {
			return commit()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = commit()
	}
	if err != nil {
		return err
	}
	bar.clear()
	if c.env.stderrTTY && !c.env.stdoutTTY {
		fmt.Fprintf(c.env.stderr, "appended %s events to log %q (seq %d-%d)\n", commas(int64(stored)), l.Name(), firstSeq, firstSeq+int64(stored)-1)
	}
	return nil
}

// storedLines says which lines of the input are stored after n events up
// to lastLine were committed, the first at seq first.
func storedLines(n, lastLine int, first int64) string {
	if n == 0 {
		return "no lines are stored"
	}
	return fmt.Sprintf("lines 1-%d are stored (seq %d-%d)", lastLine, first, first+int64(n)-1)
}

// readEvents decodes the NDJSON events of r and calls fn for each with its
// 1-based line number and its length, skipping blank lines. It returns the number of events.
// It stops at the first line that does not decode, with a *lineError, or at
// the first error from fn, which it returns as it is.
func readEvents(r io.Reader, fn func(line, size int, ev *event.Event) error) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	line, n := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := event.Decode(b)
		if err == nil {
			err = trail.CheckAppAction(ev.Action)
		}
		if err != nil {
			return n, &lineError{line: line, err: err}
		}
		if err := fn(line, len(b), &ev); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return n, &lineError{line: line + 1, err: fmt.Errorf("longer than %d bytes", maxLine)}
		}
		return n, fmt.Errorf("read stdin: %w", err)
	}
	return n, nil
}

// lineError is a bad event at a line of the input.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return "line " + strconv.Itoa(e.line) + ": " + e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

// json returns the event the flags describe, as a client would send it.
func (f *eventFlags) json() ([]byte, error) {
	actor := map[string]string{"id": f.actor}
	for k, v := range map[string]string{"type": f.actorType, "name": f.actorName, "email": f.actorEmail, "role": f.actorRole} {
		if v != "" {
			actor[k] = v
		}
	}
	ev := map[string]any{"actor": actor, "action": f.action}
	targets := []map[string]string{}
	for _, t := range f.targets {
		typ, id, ok := strings.Cut(t, ":")
		if !ok {
			return nil, usagef("--target %q: want TYPE:ID, such as user:alice", t)
		}
		targets = append(targets, map[string]string{"type": typ, "id": id})
	}
	ev["targets"] = targets
	source := map[string]string{}
	for k, v := range map[string]string{"ip": f.ip, "user_agent": f.userAgent} {
		if v != "" {
			source[k] = v
		}
	}
	ev["source"] = source
	for k, v := range map[string]string{"outcome": f.outcome, "reason": f.reason, "time": f.time, "request_id": f.requestID, "trace_id": f.traceID} {
		if v != "" {
			ev[k] = v
		}
	}
	if f.metadata != "" {
		if !json.Valid([]byte(f.metadata)) {
			return nil, usagef("--metadata: not valid JSON")
		}
		ev["metadata"] = json.RawMessage(f.metadata)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}

// flagError turns an invalid event described by flags into a usage error
// naming the flag.
func flagError(err error) error {
	var ve *event.Error
	if !errors.As(err, &ve) {
		return err
	}
	field := ve.Field
	if i := strings.IndexAny(field, ".["); i >= 0 && (strings.HasPrefix(field, "metadata") || strings.HasPrefix(field, "targets")) {
		field = field[:i]
	}
	name, ok := eventFlagOf[field]
	if !ok {
		return usagef("%s", ve.Error())
	}
	return usagef("--%s: %s", name, ve.Reason)
}

func isRegular(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode().IsRegular()
}

// spool keeps what is written to it in memory, moving it to a temporary file
// once it outgrows limit, so that it can be read back.
type spool struct {
	limit int
	mem   bytes.Buffer
	file  *os.File
}

func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && s.mem.Len()+len(p) <= s.limit {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "trail-append-*")
		if err != nil {
			return 0, fmt.Errorf("spool stdin: %w", err)
		}
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("spool stdin: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	n, err := s.file.Write(p)
	if err != nil {
		err = fmt.Errorf("spool stdin: %w", err)
	}
	return n, err
}

// reader returns a reader of everything written so far.
func (s *spool) reader() (io.Reader, error) {
	if s.file == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	_, err := s.file.Seek(0, io.SeekStart)
	return s.file, err
}

func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}

// receiptWriter prints the receipts of appended events.
type receiptWriter struct {
	w        *bufio.Writer
	json     bool
	table    bool
	seqWidth int
}

func newReceiptWriter(e *env, asJSON bool) *receiptWriter {
	return &receiptWriter{w: bufio.NewWriter(e.stdout), json: asJSON, table: e.stdoutTTY && !asJSON}
}

// begin prints the table header, with the seq column wide enough for
// lastSeq.
func (o *receiptWriter) begin(lastSeq int64) {
	o.seqWidth = max(len("SEQ"), len(strconv.FormatInt(lastSeq, 10)))
	if o.table {
		fmt.Fprintf(o.w, "%-*s  %s\n", o.seqWidth, "SEQ", "ID")
	}
}

func (o *receiptWriter) write(rs []api.Receipt) error {
	for _, r := range rs {
		switch {
		case o.json:
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			o.w.Write(append(b, '\n'))
		case o.table:
			fmt.Fprintf(o.w, "%-*d  %s\n", o.seqWidth, r.Seq, r.ID)
		default:
			fmt.Fprintf(o.w, "%d\t%s\n", r.Seq, r.ID)
		}
	}
	return o.w.Flush()
}

// batchAppender is where append stores events: a local log, or a server.
type batchAppender interface {
	Name() string
	Size() int64
	Append(ctx context.Context, e event.Event) (api.Receipt, error)
	AppendBatch(ctx context.Context, events []event.Event) ([]api.Receipt, error)
	// batchSize bounds a batch: at most so many events, and lines of at
	// most so many bytes together, unless one line is longer.
	batchSize() (events, bytes int)
}

// remoteLog appends through a Trail server (--server). Its batches are
// smaller, to stay under the server's request body limit.
type remoteLog struct {
	c    *client.Client
	name string // the log's origin line: the API does not name logs
	size int64  // the log's size when append started
}

func (r *remoteLog) Size() int64 { return r.size }

func (r *remoteLog) Name() string { return r.name }

func (r *remoteLog) Append(ctx context.Context, e event.Event) (api.Receipt, error) {
	rs, err := r.c.Append(ctx, e)
	if err != nil {
		return api.Receipt{}, remoteError(err)
	}
	return rs[0], nil
}

func (r *remoteLog) AppendBatch(ctx context.Context, evs []event.Event) ([]api.Receipt, error) {
	rs, err := r.c.Append(ctx, evs...)
	return rs, remoteError(err)
}

// batchSize keeps a request well under the server's default body limit
// (1 MiB), its JSON a little longer than the lines.
func (r *remoteLog) batchSize() (int, int) { return 1000, 512 << 10 }

// remoteError turns a server's validation error back into the
// *event.Error the local path gives, so messages name the line.
func remoteError(err error) error {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Code == "invalid_event" {
		return &event.Error{Index: -1, Field: apiErr.Field, Reason: apiErr.Message}
	}
	return err
}

// localLog appends to a log of the data directory.
type localLog struct{ *trail.Log }

func (localLog) batchSize() (int, int) { return batchSize, math.MaxInt }
