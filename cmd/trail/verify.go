package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/internal/merkle"
	"github.com/trail-audit/trail/internal/verify"
	"github.com/trail-audit/trail/policy"
)

// verifyCommand checks a whole log.
type verifyCommand struct {
	env     *env
	db      dbFlags
	against string
	vkey    string
	json    bool
	index   bool
	policy  string
	// receipt is the receipt file --receipt checks.
	receipt string
}

func (c *verifyCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	c.db.register(fs, c.db)
	fs.StringVar(&c.against, "against", "", "also prove that the log is consistent with the signed checkpoint in `FILE`\n(saved earlier with trail checkpoint; - reads stdin)")
	fs.StringVar(&c.vkey, "verifier-key", "", "check signatures with this verifier `KEY` (or a file holding it)\ninstead of the one recorded in the database")
	fs.BoolVar(&c.json, "json", false, "print the result as a JSON object")
	fs.StringVar(&c.policy, "witness-policy", "", "also require the checkpoint to be cosigned by witnesses of the policy\nin `FILE` (C2SP tlog-policy) that meet its quorum (see below)")
	fs.StringVar(&c.receipt, "receipt", "", "check the receipt in `FILE` offline instead of a log (from an append with\n?receipts=wait or trail get --proof-file; - reads stdin); needs --verifier-key")
	fs.BoolVar(&c.index, "index", false, "also derive the search indexes and counts from the events again\nand compare them with the stored ones (see below)")
	return fs
}

func (c *verifyCommand) Usage() string {
	return usage(c.flagSet(), "trail verify [--against FILE] [--verifier-key KEY] [flags]\n       trail verify --receipt FILE --verifier-key KEY [--witness-policy FILE]", `
Verify recomputes the log from its stored events: each event's canonical
JSON and leaf hash, the stored Merkle tree, and the root hash at every
stored checkpoint, whose signature it checks. With --against it also proves
that the log is an extension of a checkpoint saved earlier, so events that
checkpoint covered were not altered, removed or reordered since.

On success it prints the number of events and checkpoints checked and the
root hash, and exits 0. If anything does not hold it prints
"verification FAILED: seq N: problem" (N is the first bad event, when the
fault is tied to one) and exits 1. That includes an --against checkpoint
whose signature does not verify or that is of another log; a file that is
not a signed checkpoint at all is a usage error (exit 2).

Without --verifier-key, signatures are checked with the verifier key stored in the
database, which whoever can alter the database can replace as well. An
auditor should pin the key published when the log was created.

With --server URL and --key KEY it verifies a log served by trail serve on
this side instead, trusting only --verifier-key (required): it downloads
the events, recomputes every leaf and the root, and checks them against
the latest checkpoint's signature (and --against, by a consistency proof).

With --witness-policy FILE (a C2SP tlog-policy file: log, witness, group and
quorum lines) it also requires that checkpoint to carry valid cosignatures
(tlog-cosignature, cosignature/v1) of witnesses that meet the policy's
quorum: witnesses that cosign a checkpoint only after checking that it
extends every one of the log they cosigned before, so a log shown
differently to different readers, or rolled back, is caught. It lists the
witnesses, with when each cosigned, and those missing. A checkpoint short
of its quorum fails ("not witnessed: 1 of 2 witnesses cosigned") with exit
status 1, once its events are verified. On a data directory it checks, once
the events verify, the newest cosigned checkpoint the store holds (trail
serve --witness-policy stores them): it must meet the quorum, carry the
log's signature and match the verified tree at its size; it says how many
newer events are not witnessed yet, and fails if no stored checkpoint
meets the policy.

With --receipt FILE it checks one event's receipt offline, with no data
directory and no server: a C2SP tlog-proof carrying the event, as an append
with ?receipts=wait answers and trail get --proof-file writes. The
checkpoint in it must be signed by --verifier-key (required) and, with
--witness-policy, cosigned by witnesses that meet the quorum; the event
must be a leaf of its tree at the receipt's index. It prints the event and
the checkpoint, and exits 1 if anything does not hold.

With --index, once the log verifies, it also checks what Trail derives
from the events: the search indexes (action, outcome, actor, ip, target,
free text) and the counts behind the overview and the action filter (by
hour and by day; per action). It derives them all again from the events,
a segment of 16,384 events at a time, in bounded memory, and compares them
with the stored ones. A wrong index hides events from searches without
changing any event, so the plain verification cannot see it. Each
difference is listed with the index, the value and the seqs of the events
missing from it or listed under a value they do not have (the first 10,
and how many), or the stored and derived numbers of a count; then it
exits 1. Only the events the background indexer had reached are compared;
it says how far that was. It reads only, and runs beside trail serve.
"trail reindex" rebuilds the indexes and counts from the events.`, `
  trail verify
  trail verify --index
  trail verify --server https://trail.example --key "$TRAIL_KEY" --verifier-key "$(cat acme.vkey)"
  trail verify --server https://trail.example --key "$TRAIL_KEY" --verifier-key acme.vkey --witness-policy witnesses.txt
  trail verify --verifier-key 'example.com/trail/default+8a0e2f1c+AR7...' --against checkpoint-2026-03-01.txt
  trail verify --receipt receipt.txt --verifier-key acme.vkey --witness-policy witnesses.txt
  trail verify --json`)
}

// verifyResult is what verify prints with --json.
type verifyResult struct {
	Log         string         `json:"log"`
	Verified    bool           `json:"verified"`
	Events      int64          `json:"events"`
	Checkpoints int            `json:"checkpoints"`
	Root        string         `json:"root,omitempty"`
	Against     *againstResult `json:"against,omitempty"`
	KeyPinned   bool           `json:"key_pinned"`
	Seq         *int64         `json:"seq,omitempty"`
	Problem     string         `json:"problem,omitempty"`
	Index       *indexResult   `json:"index,omitempty"` // with --index
	// Witnesses is what --witness-policy found in the checkpoint's
	// cosignatures.
	Witnesses *witnessesResult `json:"witnesses,omitempty"`
}

// witnessesResult is a checkpoint's cosignatures checked against a
// witness policy.
type witnessesResult struct {
	Size int64 `json:"size,omitempty"` // the tree size of the checkpoint checked
	// Unwitnessed is how many events the log's newest signed checkpoint
	// holds past Size: not witnessed yet.
	Unwitnessed int64            `json:"unwitnessed,omitempty"`
	Quorum      string           `json:"quorum"` // e.g. "2 of w1, w2"
	Met         bool             `json:"met"`
	Cosigners   []cosignerResult `json:"cosigners"` // sorted by name
	Missing     []string         `json:"missing"`   // sorted
}

type cosignerResult struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"` // when the witness says it cosigned
}

func newWitnessesResult(r *policy.Result) *witnessesResult {
	if r == nil {
		return nil
	}
	w := &witnessesResult{Quorum: r.Quorum, Met: r.Met, Cosigners: []cosignerResult{}, Missing: []string{}}
	for _, c := range r.Cosignatures {
		w.Cosigners = append(w.Cosigners, cosignerResult{Name: c.Witness, Time: c.Time})
	}
	w.Missing = append(w.Missing, r.Missing...)
	return w
}

// printUnwitnessed says how many newer events are not witnessed yet, if
// any.
func (w *witnessesResult) printUnwitnessed(out io.Writer) {
	switch {
	case w.Unwitnessed == 1:
		fmt.Fprintf(out, "  1 newer event is not witnessed yet: the log's newest signed checkpoint holds %s.\n", commas(w.Size+1))
	case w.Unwitnessed > 1:
		fmt.Fprintf(out, "  %s newer events are not witnessed yet: the log's newest signed checkpoint holds %s.\n", commas(w.Unwitnessed), commas(w.Size+w.Unwitnessed))
	}
}

// print writes the witnesses as a table: each policy witness, whether and
// when it cosigned.
func (w *witnessesResult) print(out io.Writer) error {
	state := "met"
	if !w.Met {
		state = "NOT MET"
	}
	of := ""
	if w.Size > 0 {
		of = " the checkpoint of " + commas(w.Size) + " events"
	}
	fmt.Fprintf(out, "  witnesses: quorum %s %s, %d of %d cosigned%s\n", w.Quorum, state, len(w.Cosigners), len(w.Cosigners)+len(w.Missing), of)
	t := &table{header: []string{"  WITNESS", "COSIGNED"}}
	for _, c := range w.Cosigners {
		t.add("  "+c.Name, c.Time.UTC().Format(time.RFC3339))
	}
	for _, m := range w.Missing {
		t.add("  "+m, "missing")
	}
	return t.write(out, 0)
}

type againstResult struct {
	Size int64  `json:"size"`
	Root string `json:"root"`
}

func (c *verifyCommand) Run(ctx context.Context, args []string) (err error) {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	var opts trail.VerifyOptions
	if c.vkey != "" {
		v, err := readVerifier(c.vkey)
		if err != nil {
			return usagef("--verifier-key: %v", err)
		}
		opts.Verifier = v
	}
	var againstCP trail.Checkpoint
	if c.against != "" {
		var err error
		if c.against == "-" {
			opts.Against, err = readLimited(c.env.stdin, maxSmallFile)
		} else {
			opts.Against, err = readFlagFile(c.against, maxSmallFile)
		}
		if err != nil {
			return usagef("--against: %v", err)
		}
		// A file that is not a checkpoint at all is the wrong file, not
		// evidence against the log.
		if againstCP, err = parseSignedCheckpoint(opts.Against); err != nil {
			return usagef("--against %s: %v", c.against, err)
		}
	}
	var pol *policy.Policy
	if c.policy != "" {
		text, err := readFlagFile(c.policy, maxSmallFile)
		if err != nil {
			return usagef("--witness-policy: %v", err)
		}
		if pol, err = policy.Parse(text); err != nil {
			return usagef("--witness-policy %s: %v", c.policy, err)
		}
	}
	if c.receipt != "" {
		return c.runReceipt(opts.Verifier, pol)
	}
	if c.db.server != "" {
		if c.index {
			return usagef("--index checks the indexes of a data directory, not of a --server")
		}
		return c.runRemote(ctx, opts.Verifier, opts.Against, againstCP, pol)
	}
	var db *trail.DB
	var l *trail.Log
	if pol != nil {
		db, l, err = c.openWitnessed(ctx, pol)
	} else {
		db, l, err = c.db.open(ctx, true)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if opts.Verifier == nil {
		fmt.Fprintf(c.env.stderr, "warning: checking signatures with the verifier key stored in the database (%s); an auditor should pin the published key with --verifier-key\n", l.VerifierKey())
	} else if !sameKey(opts.Verifier, l.VerifierKey()) {
		fmt.Fprintf(c.env.stderr, "note: the database records a different verifier key: %s\n", l.VerifierKey())
	}

	var rep trail.VerifyReport
	if origin := verifierName(opts.Verifier, l); opts.Against != nil && againstCP.Origin != origin {
		err = otherLogError(c.against, againstCP.Origin, origin)
	} else {
		bar := newProgress(c.env, "verify")
		opts.Progress = func(done, total int64) { bar.update(done, total, "events") }
		rep, err = l.Verify(ctx, opts)
		bar.clear()
	}
	res := verifyResult{Log: l.Name(), KeyPinned: c.vkey != ""}
	var ve *trail.VerifyError
	switch {
	case errors.As(err, &ve):
		if ve.Seq >= 0 {
			res.Seq = &ve.Seq
		}
		res.Problem = ve.Problem
	case err != nil:
		return err
	default:
		res.Verified = true
		res.Events, res.Checkpoints = rep.Size, rep.Checkpoints
		res.Root = base64.StdEncoding.EncodeToString(rep.Root[:])
		if rep.Against != nil {
			res.Against = &againstResult{Size: rep.Against.Size, Root: base64.StdEncoding.EncodeToString(rep.Against.Hash[:])}
		}
		if pol != nil {
			res.Witnesses, err = localWitnesses(ctx, l, pol, opts.Verifier)
			if res.Witnesses != nil {
				res.Witnesses.Unwitnessed = max(res.Events-res.Witnesses.Size, 0)
			}
			if err != nil {
				res.Verified = false
				if !errors.As(err, &ve) {
					return err
				}
				res.Problem = ve.Problem
			}
		}
		if c.index && res.Verified {
			if res.Index, err = c.checkIndex(ctx, l); err != nil {
				return err
			}
		}
	}

	if c.json {
		if err := json.NewEncoder(c.env.stdout).Encode(res); err != nil {
			return err
		}
	} else {
		w := &errWriter{w: c.env.stdout}
		defer func() {
			// The verdict unread is a failure: a script reading it must
			// not take silence for a pass.
			if err == nil && w.err != nil {
				err = fmt.Errorf("write the result: %w", w.err)
			}
		}()
		if res.Verified {
			fmt.Fprintf(w, "Log %q verified: %s events, %s signed checkpoints checked.\n", res.Log, commas(res.Events), commas(int64(res.Checkpoints)))
			fmt.Fprintf(w, "  root: %s\n", res.Root)
			if res.Against != nil {
				fmt.Fprintf(w, "  consistent with the checkpoint of size %s (root %s): the log only grew since.\n", commas(res.Against.Size), res.Against.Root)
			}
		}
		if res.Witnesses != nil {
			if err := res.Witnesses.print(w); err != nil {
				return err
			}
			res.Witnesses.printUnwitnessed(w)
		}
	}
	if ve != nil {
		return ve
	}
	if res.Index != nil {
		out := c.env.stdout
		if c.json {
			out = io.Discard
		}
		return printIndex(out, res.Log, res.Index)
	}
	return nil
}

// sameKey reports whether v is the verifier of the key vkey.
func sameKey(v note.Verifier, vkey string) bool {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return v.Name() == name && fmt.Sprintf("%08x", v.KeyHash()) == hash
}

// runRemote verifies the log of --server on this side: the events it
// serves must hash to the checkpoint signed by the pinned verifier key, v.
func (c *verifyCommand) runRemote(ctx context.Context, v note.Verifier, against []byte, againstCP trail.Checkpoint, pol *policy.Policy) error {
	cl, vkey, err := c.db.pinnedClient(c.vkey)
	if err != nil {
		return err
	}
	if pol != nil {
		if cl, err = client.New(c.db.server, c.db.key, client.Options{Policy: pol}); err != nil {
			return usagef("--server: %v", err)
		}
	}
	var got client.VerifiedLog
	var ve *trail.VerifyError
	switch {
	case against != nil && againstCP.Origin != v.Name():
		err = otherLogError(c.against, againstCP.Origin, v.Name())
	case against != nil:
		if _, _, oerr := merkle.Open(against, v); oerr != nil {
			err = &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the checkpoint in %s does not verify with the pinned key: %v", c.against, oerr)}
		}
	}
	if err == nil {
		bar := newProgress(c.env, "verify")
		got, err = cl.VerifyLog(ctx, vkey, against, func(done, total int64) { bar.update(done, total, "events") })
		bar.clear()
	}
	cp := got.Checkpoint
	res := verifyResult{Log: c.db.server, KeyPinned: true, Witnesses: newWitnessesResult(got.Witnesses)}
	if res.Witnesses != nil {
		res.Witnesses.Size = cp.Size
		// Events past the witnessed checkpoint, as the log's newest signed
		// checkpoint counts them: a lag, or a history the witnesses refused.
		if latest, lerr := cl.SignedCheckpoint(ctx); lerr == nil && v != nil {
			if lcp, _, oerr := merkle.Open(latest, v); oerr == nil && lcp.Size > cp.Size {
				res.Witnesses.Unwitnessed = lcp.Size - cp.Size
			}
		}
	}
	switch {
	case errors.As(err, &ve):
		res.Problem = ve.Problem
	case errors.Is(err, client.ErrNotVerified) || errors.Is(err, client.ErrFork) || errors.Is(err, client.ErrNotWitnessed):
		res.Problem = err.Error()
		// The first bad event, as a local verify names it.
		if fault := (*verify.Error)(nil); errors.As(err, &fault) && fault.Seq >= 0 {
			res.Seq = &fault.Seq
		}
	case err != nil:
		return err
	default:
		res.Verified = true
		res.Events = cp.Size
		res.Root = base64.StdEncoding.EncodeToString(cp.Hash[:])
		if against != nil {
			// VerifyLog proved the log consistent with it.
			res.Against = &againstResult{Size: againstCP.Size, Root: base64.StdEncoding.EncodeToString(againstCP.Hash[:])}
		}
	}
	if c.json {
		if err := json.NewEncoder(c.env.stdout).Encode(res); err != nil {
			return err
		}
	} else {
		if res.Verified {
			if _, err := fmt.Fprintf(c.env.stdout, "Log at %s verified: %s events hash to the checkpoint signed by the pinned key.\n  root: %s\n", c.db.server, commas(res.Events), res.Root); err != nil {
				return fmt.Errorf("write the result: %w", err)
			}
			if res.Against != nil {
				fmt.Fprintf(c.env.stdout, "  consistent with the checkpoint of size %s (root %s): the log only grew since.\n", commas(res.Against.Size), res.Against.Root)
			}
		}
		if res.Witnesses != nil {
			if err := res.Witnesses.print(c.env.stdout); err != nil {
				return err
			}
			res.Witnesses.printUnwitnessed(c.env.stdout)
		}
	}
	if !res.Verified {
		return &trail.VerifyError{Seq: -1, Problem: res.Problem}
	}
	return nil
}

// openWitnessed opens the store read-only with the witness policy pol, and
// the log, as dbFlags.open does.
func (c *verifyCommand) openWitnessed(ctx context.Context, pol *policy.Policy) (*trail.DB, *trail.Log, error) {
	db, err := c.db.openStore(ctx, trail.Options{ReadOnly: true, WitnessPolicy: pol})
	if err != nil {
		return nil, nil, fmt.Errorf("--witness-policy %s: %w", c.policy, err)
	}
	l, err := db.Log(ctx, c.db.log)
	if err != nil {
		db.Close()
		if errors.Is(err, trail.ErrNotFound) {
			names, _ := db.Logs(ctx)
			return nil, nil, fmt.Errorf("%s has no log %q (%s)", c.db.data, c.db.log, logsHint(names, c.db.log))
		}
		return nil, nil, err
	}
	if !l.Witnessed() {
		db.Close()
		return nil, nil, usagef("--witness-policy %s: its log lines do not name log %q (key %s)", c.policy, l.Name(), l.VerifierKey())
	}
	return db, l, nil
}

// localWitnesses checks the newest cosigned checkpoint stored for l, once
// l's events verified: it must meet pol, be signed by the log's key (the
// pinned one if any) and match the verified tree at its size. A log with
// none is a *trail.VerifyError saying it is not witnessed.
func localWitnesses(ctx context.Context, l *trail.Log, pol *policy.Policy, pinned note.Verifier) (*witnessesResult, error) {
	signed, err := l.WitnessedCheckpoint(ctx)
	if errors.Is(err, trail.ErrNotFound) {
		latest, lerr := l.Checkpoint()
		if lerr != nil {
			return nil, lerr
		}
		r := pol.Check(latest)
		w := newWitnessesResult(&r)
		w.Size = signedSize(latest)
		return w, &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("no stored checkpoint of the log meets the witness policy: the latest, of %d events, is not witnessed: %s", w.Size, r)}
	}
	if err != nil {
		return nil, err
	}
	var cp trail.Checkpoint
	if pinned != nil {
		cp, _, err = merkle.Open(signed, pinned)
	} else {
		cp, err = l.OpenCheckpoint(signed)
	}
	if err != nil {
		return nil, &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the witnessed checkpoint does not verify with the log's key: %v", err)}
	}
	r := pol.Check(signed)
	w := newWitnessesResult(&r)
	w.Size = cp.Size
	if !r.Met {
		return w, &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the witnessed checkpoint of %d events is not witnessed: %s", cp.Size, r)}
	}
	root, err := l.TreeHash(ctx, cp.Size)
	if err != nil {
		return w, err
	}
	if root != cp.Hash {
		return w, &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the witnessed checkpoint of %d events has another root than the log's tree of %d events: the log changed after its witnesses cosigned it", cp.Size, cp.Size)}
	}
	return w, nil
}

// signedSize is the tree size a signed checkpoint states, or 0.
func signedSize(signed []byte) int64 {
	c, err := parseSignedCheckpoint(signed)
	if err != nil {
		return 0
	}
	return c.Size
}

// verifierName is the name of the key that checks l's signatures: the
// pinned verifier's, or else the log's origin.
func verifierName(pinned note.Verifier, l *trail.Log) string {
	if pinned != nil {
		return pinned.Name()
	}
	return l.Origin()
}

// otherLogError says that the checkpoint in file, of origin got, is not of
// the log being verified, whose origin is want.
func otherLogError(file, got, want string) error {
	return &trail.VerifyError{Seq: -1, Problem: fmt.Sprintf("the checkpoint in %s is of another log: its origin is %q, this log's is %q", file, got, want)}
}

// errWriter writes to w until a write fails, and keeps that error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
