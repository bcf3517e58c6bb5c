package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/eventid"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/policy"
)

// getCommand prints one event with its inclusion proof, and checks the
// proof.
type getCommand struct {
	env  *env
	db   dbFlags
	vkey string
	json bool
	// seq is the event's position, when given with --seq instead of an id.
	seq   int64
	bySeq bool
	// proofFile is where --proof-file writes the event's receipt.
	proofFile string
	// policy is the witness policy file of --witness-policy.
	policy string
}

func (c *getCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.Func("seq", "get the event at position `N` of the log (0 is the first) instead of by id", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a seq, a whole number from 0")
		}
		c.seq, c.bySeq = n, true
		return nil
	})
	fs.StringVar(&c.vkey, "verifier-key", "", "check the checkpoint with this verifier `KEY` (or a file holding it)\ninstead of the one recorded in the database")
	fs.StringVar(&c.proofFile, "proof-file", "", "also write the event's receipt to `FILE`: a C2SP tlog-proof carrying the event,\nits inclusion proof and the checkpoint (with any witness cosignatures),\nwhich trail verify --receipt FILE checks offline")
	fs.StringVar(&c.policy, "witness-policy", "", "with --server, also require the checkpoint to be cosigned by witnesses of the\npolicy in `FILE` (C2SP tlog-policy) that meet its quorum, and list them")
	fs.BoolVar(&c.json, "json", false, `print {"event", "proof": {"seq", "tree_size", "hashes"}, "checkpoint", "verified"}`)
	return fs
}

func (c *getCommand) Usage() string {
	return usage(c.flagSet(), "trail get [flags] ID\n       trail get [flags] --seq N", `
Get prints the event with the given id (the "id" of search's output, a
26-character ULID; without --log, from the log that made it), or with --seq
the event at that position of the log,
its inclusion proof in the tree of
the log's latest signed checkpoint, and whether the proof holds: the leaf
hash of the event's canonical JSON, combined with the proof's hashes, must
give the root hash that the checkpoint signs. It exits with status 1 if it
does not.

On a terminal the event is indented; with --json it is printed as its
canonical JSON, the exact bytes hashed into the log, so anyone can check the
proof again with golang.org/x/mod/sumdb/tlog.CheckRecord.

With --proof-file it also writes the event's receipt, offline evidence to
keep: a C2SP tlog-proof (https://c2sp.org/tlog-proof) whose extra data is
the event's canonical JSON, with its index, inclusion proof and the signed
checkpoint. trail verify --receipt checks it with the log's verifier key
(and --witness-policy) alone. Nothing is written unless the proof holds.

With --server and --witness-policy FILE (C2SP tlog-policy) the checkpoint
must also carry valid cosignatures of witnesses that meet the policy's
quorum, which it lists; an event newer than the server's latest witnessed
checkpoint fails as not witnessed (exit status 1) until they cosign one
that holds it.`, `
  trail get 01KAXY2D8M0000000000BVN6QA
  trail get --seq 2
  trail get --proof-file receipt.txt 01KAXY2D8M0000000000BVN6QA
  trail get --json 01KAXY2D8M0000000000BVN6QA | jq .proof`)
}

// getResult is what get prints with --json.
type getResult struct {
	Event      json.RawMessage `json:"event"`
	Proof      *getProof       `json:"proof,omitempty"`
	Checkpoint string          `json:"checkpoint,omitempty"`
	Verified   bool            `json:"verified"`
	Problem    string          `json:"problem,omitempty"`
	// Witnesses is what --witness-policy found in the checkpoint's
	// cosignatures.
	Witnesses *witnessesResult `json:"witnesses,omitempty"`
}

type getProof struct {
	Seq      int64    `json:"seq"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

func (c *getCommand) Run(ctx context.Context, args []string) error {
	pos, err := parseFlags(c.flagSet(), args)
	if err != nil {
		return err
	}
	if c.proofFile != "" {
		if err := c.db.checkOutput("--proof-file", c.proofFile); err != nil {
			return err
		}
	}
	var id string
	switch {
	case c.bySeq && len(pos) > 0:
		return usagef("give an event id or --seq N, not both")
	case c.bySeq:
	case len(pos) != 1:
		return usagef("want one event id (or --seq N), got %d arguments", len(pos))
	default:
		id = pos[0]
		if _, err := eventid.Parse("", id); errors.Is(err, eventid.ErrMalformedID) {
			return notAnID(id)
		}
	}
	var pinned note.Verifier
	if c.vkey != "" {
		if pinned, err = readVerifier(c.vkey); err != nil {
			return usagef("--verifier-key: %v", err)
		}
	}
	if c.db.server != "" {
		return c.runRemote(ctx, id)
	}
	if c.policy != "" {
		return usagef("--witness-policy checks the checkpoint a --server proves the event against; trail verify --witness-policy checks a data directory's")
	}
	byID := ""
	if !c.bySeq && !c.db.logGiven && c.env.getenv("TRAIL_LOG") == "" {
		byID = id // no log named: the one the id names, as its last characters do
	}
	db, l, err := c.db.openFor(ctx, true, byID)
	if err != nil {
		return err
	}
	defer db.Close()
	var e *event.Event
	if c.bySeq {
		e, err = l.GetSeq(ctx, c.seq)
		if errors.Is(err, trail.ErrNotFound) {
			return noSeq(c.seq, l.Size(), fmt.Sprintf("log %q", l.Name()))
		}
	} else {
		e, err = l.Get(ctx, id)
	}
	if err != nil {
		if _, perr := eventid.Parse(l.Name(), id); errors.Is(perr, eventid.ErrForeignID) {
			// Its last characters name its log: one of the others, or
			// none (a typo there, or an id of another store).
			if name := logOfID(ctx, db, id); name != "" {
				return fmt.Errorf("event %s not found in log %q: the id was made for the log %q (pick it with --log %s)", id, l.Name(), name, name)
			}
			return fmt.Errorf("event %s not found: no log here made this id (its last characters name the log): check it for a typo, or for the store it came from", id)
		}
		if errors.Is(err, trail.ErrNotFound) {
			return fmt.Errorf("event %s not found in log %q", id, l.Name())
		}
		return err
	}

	res := getResult{Event: canon.Append(nil, e)}
	if err := c.prove(ctx, l, pinned, e.Seq, &res); err != nil {
		return err
	}
	if err := c.print(&res); err != nil {
		return err
	}
	if !res.Verified {
		return &trail.VerifyError{Seq: e.Seq, Problem: res.Problem}
	}
	if c.proofFile == "" {
		return nil
	}
	signed, err := l.ReceiptCheckpoint(ctx, e.Seq)
	if err != nil {
		return err
	}
	receipt, err := l.Receipt(ctx, e, signed)
	if err != nil {
		return err
	}
	if err := durable.Replace(c.proofFile, receipt); err != nil {
		return fmt.Errorf("--proof-file: %w", err)
	}
	return nil
}

// prove fills in the proof of the event at seq, whose canonical JSON is
// res.Event, against the latest checkpoint, and checks it. A proof that
// does not hold is a result (Verified false, Problem), not an error.
func (c *getCommand) prove(ctx context.Context, l *trail.Log, pinned note.Verifier, seq int64, res *getResult) error {
	signed, err := l.Checkpoint()
	if err != nil {
		return err
	}
	res.Checkpoint = string(signed)
	var cp trail.Checkpoint
	if pinned != nil {
		cp, _, err = merkle.Open(signed, pinned)
	} else {
		cp, err = l.OpenCheckpoint(signed)
	}
	if err != nil {
		res.Problem = fmt.Sprintf("the latest checkpoint does not verify: %v", err)
		return nil
	}
	proof, err := l.ProveInclusion(ctx, seq, cp.Size)
	if err != nil {
		res.Problem = fmt.Sprintf("no inclusion proof in the tree of size %d: %v", cp.Size, err)
		return nil
	}
	res.Proof = &getProof{Seq: seq, TreeSize: cp.Size, Hashes: make([]string, len(proof))}
	for i, h := range proof {
		res.Proof.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, seq, tlog.RecordHash(res.Event)); err != nil {
		res.Problem = fmt.Sprintf("the stored event is damaged: the inclusion proof does not lead from it to the root of the signed checkpoint of size %d (the event or the stored Merkle hashes were altered); run trail verify", cp.Size)
		return nil
	}
	res.Verified = true
	return nil
}

func (c *getCommand) print(res *getResult) error {
	w := bufio.NewWriter(c.env.stdout)
	if c.json {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // keep the event's canonical bytes as they are
		if err := enc.Encode(res); err != nil {
			return err
		}
		return w.Flush()
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, res.Event, "", "  ")
	fmt.Fprintf(w, "%s\n", escapeInvisible(pretty.String()))
	if res.Proof != nil {
		fmt.Fprintf(w, "\nInclusion proof: seq %d in the tree of size %d (%d hashes)\n", res.Proof.Seq, res.Proof.TreeSize, len(res.Proof.Hashes))
		for _, h := range res.Proof.Hashes {
			fmt.Fprintf(w, "  %s\n", h)
		}
	}
	if res.Checkpoint != "" {
		fmt.Fprintf(w, "\nCheckpoint:\n")
		for line := range strings.Lines(res.Checkpoint) {
			if line != "\n" {
				line = "  " + line
			}
			w.WriteString(line)
		}
	}
	if res.Verified && res.Witnesses != nil {
		fmt.Fprintf(w, "\nVerified: the event is in the tree of a checkpoint signed by the log and cosigned by its witnesses.\n")
	} else if res.Verified {
		fmt.Fprintf(w, "\nVerified: the event is in the tree of the log's latest signed checkpoint.\n")
	} else {
		fmt.Fprintf(w, "\nNOT VERIFIED: %s\n", res.Problem)
	}
	if res.Witnesses != nil {
		if err := res.Witnesses.print(w); err != nil {
			return err
		}
	}
	return w.Flush()
}

// runRemote fetches the event from --server and verifies its proof and
// checkpoint against the pinned verifier key.
func (c *getCommand) runRemote(ctx context.Context, id string) error {
	cl, vkey, err := c.db.pinnedClient(c.vkey)
	if err != nil {
		return err
	}
	if c.policy != "" {
		text, err := readFlagFile(c.policy, maxSmallFile)
		if err != nil {
			return usagef("--witness-policy: %v", err)
		}
		pol, err := policy.Parse(text)
		if err != nil {
			return usagef("--witness-policy %s: %v", c.policy, err)
		}
		if cl, err = client.New(c.db.server, c.db.key, client.Options{Policy: pol}); err != nil {
			return usagef("--server: %v", err)
		}
	}
	if c.bySeq && c.seq == math.MaxInt64 {
		return noSeq(c.seq, 0, "the server's log") // no log is that long
	}
	if c.bySeq {
		// The API finds events by id. A search cursor is the seq that
		// the next page starts below, so the one-event page under
		// seq+1 holds the event at seq; what it says is checked with
		// the proof of that id below.
		page, err := cl.SearchPage(ctx, api.Query{Cursor: strconv.FormatInt(c.seq+1, 10), Limit: 1})
		if err != nil {
			return err
		}
		if len(page.Events) == 0 || page.Events[0].Seq != c.seq {
			size := int64(0)
			if len(page.Events) > 0 && page.Events[0].Seq < c.seq {
				size = page.Events[0].Seq + 1
			}
			return noSeq(c.seq, size, "the server's log")
		}
		id = page.Events[0].ID
	}
	got, err := cl.Get(ctx, id, vkey)
	if err == nil && c.bySeq && got.Event.Seq != c.seq {
		err = fmt.Errorf("%w: asked for seq %d, got event %d", client.ErrNotVerified, c.seq, got.Event.Seq)
	}
	if errors.Is(err, client.ErrNotVerified) || errors.Is(err, client.ErrNotWitnessed) {
		return &trail.VerifyError{Seq: -1, Problem: err.Error()}
	}
	if err != nil {
		return err
	}
	res := getResult{Event: canon.Append(nil, got.Event), Checkpoint: string(got.Signed), Verified: true}
	if res.Witnesses = newWitnessesResult(got.Witnesses); res.Witnesses != nil {
		res.Witnesses.Size = got.Checkpoint.Size
	}
	res.Proof = &getProof{Seq: got.Event.Seq, TreeSize: got.Checkpoint.Size, Hashes: make([]string, len(got.Proof))}
	for i, h := range got.Proof {
		res.Proof.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	if err := c.print(&res); err != nil {
		return err
	}
	if c.proofFile == "" {
		return nil
	}
	if err := durable.Replace(c.proofFile, got.Receipt()); err != nil {
		return fmt.Errorf("--proof-file: %w", err)
	}
	return nil
}

// pinnedClient returns the client of --server and the verifier key pinned
// with --verifier-key (vkey), which checking a server's answers requires.
func (d dbFlags) pinnedClient(vkey string) (*client.Client, string, error) {
	cl, err := d.client()
	if err != nil {
		return nil, "", err
	}
	if vkey == "" {
		return nil, "", usagef("checking a server's answers needs the log's verifier key, pinned: --verifier-key KEY (from its operator)")
	}
	text, err := verifierKeyText(vkey)
	if err != nil {
		return nil, "", usagef("--verifier-key: %v", err)
	}
	return cl, text, nil
}

// notAnID is the usage error for an argument of get that is not an event
// id, such as a seq.
func notAnID(arg string) error {
	if _, err := strconv.ParseInt(arg, 10, 64); err == nil {
		return usagef("%q is not an event id but looks like a seq; to get the event at seq %s: trail get --seq %s", arg, arg, arg)
	}
	return usagef("%q is not an event id (a 26-character id such as 01KAXY2D8M0000000000BVN6QA, as search prints); to get an event by its position: trail get --seq N", arg)
}

// noSeq is the error for a seq past the end of a log of size events.
func noSeq(seq, size int64, log string) error {
	if size == 0 {
		return fmt.Errorf("no event at seq %d in %s", seq, log)
	}
	return fmt.Errorf("no event at seq %d in %s: its last event is seq %d", seq, log, size-1)
}
