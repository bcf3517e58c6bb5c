package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/trail-audit/trail"
)

// copyCommand copies whole logs from one store to another.
type copyCommand struct {
	env           *env
	db            dbFlags // the global flags: --master-key-file, and --log given before the command
	from, to      string
	fromKey       string
	toKey         string
	logs          multiFlag
	json          bool
	masterKeyFile string
}

// multiFlag is a string flag that may be given many times.
type multiFlag []string

func (f *multiFlag) String() string { return strings.Join(*f, ",") }

func (f *multiFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}

func (c *copyCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("copy", flag.ContinueOnError)
	fs.StringVar(&c.from, "from", "", "the store to copy from, by `URL` (sqlite:DIR, postgres://…); opened read-only")
	fs.StringVar(&c.to, "to", "", "the store to copy to, by `URL`; created if there is none")
	fs.Var(&c.logs, "log", "copy only the log `NAME` (repeat for more; default: every log)")
	fs.StringVar(&c.masterKeyFile, "master-key-file", c.db.masterKeyFile, "the master key `FILE` of the PostgreSQL stores on either side\n($TRAIL_MASTER_KEY_FILE)")
	fs.StringVar(&c.fromKey, "from-master-key-file", "", "the master key `FILE` of a PostgreSQL --from store, when it is not --master-key-file")
	fs.StringVar(&c.toKey, "to-master-key-file", "", "the master key `FILE` of a PostgreSQL --to store, when it is not --master-key-file\n(created with a new key if the store is created and the file does not exist)")
	fs.BoolVar(&c.json, "json", false, "print the summary as a JSON object")
	return fs
}

func (c *copyCommand) Usage() string {
	return usage(c.flagSet(), "trail copy --from URL --to URL [--log NAME]... [flags]", `
Copy moves whole logs between stores, for example from a data directory to
PostgreSQL: each log's signing key first, then its events, Merkle tiles
and signed checkpoints, then its API keys (revoked ones stay revoked).
The checkpoints on both sides are identical, byte for byte, so auditors'
saved checkpoints and pinned verifier keys keep working on the copy.

It verifies as it goes: every event's leaf hash is computed again, and
every checkpoint's root and signature checked with the log's verifier
key before it is written. Damage in the source stops the copy with
"verification FAILED: seq N: …" (exit 1), and nothing from there on is
copied.

The source is opened read-only, so it can be copied beside a running
trail serve; each log is copied up to its latest checkpoint when its copy
begins. Copy is resumable: run it again after an interruption, or after
more appends to the source, and it continues where the target's logs
end. It refuses a target log that is not an earlier state of the source's
(another key, or another history), and never changes one.

A PostgreSQL store on either side needs its master key: --master-key-file
(or $TRAIL_MASTER_KEY_FILE) for both, or --from-master-key-file and
--to-master-key-file when they differ. On a terminal it shows a progress
bar for each log; at the end it prints what it copied of each log.`, `
  trail copy --from sqlite:./trail-data --to postgres://trail@db.internal/trail --master-key-file /etc/trail/master.key
  trail copy --from sqlite:/var/lib/trail --to sqlite:/backup/trail --log acme --log billing
  trail copy --from postgres://trail@db1/trail --to sqlite:./restored --from-master-key-file old.key --json`)
}

// copyResult is what copy prints with --json.
type copyResult struct {
	Logs    []copyLogResult `json:"logs"`
	Events  int64           `json:"events"`
	Seconds float64         `json:"seconds"`
	// CreatedMasterKeyFile is the master key file made for the target.
	CreatedMasterKeyFile string `json:"created_master_key_file,omitempty"`
}

type copyLogResult struct {
	Name           string `json:"name"`
	Created        bool   `json:"created"`
	From           int64  `json:"from"`
	Size           int64  `json:"size"`
	Events         int64  `json:"events"`
	Checkpoints    int    `json:"checkpoints"`
	Keys           int    `json:"keys"`
	Revoked        int    `json:"revoked"`
	KeysUnrecorded int    `json:"keys_unrecorded,omitempty"`
	// Idempotency records copied, and those left behind unreadable.
	Idempotency           int  `json:"idempotency_records"`
	IdempotencyUnreadable int  `json:"idempotency_unreadable,omitempty"`
	Done                  bool `json:"done"`
}

func (c *copyCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if c.from == "" || c.to == "" {
		return usagef("give the stores to copy from and to: --from URL --to URL")
	}
	if len(c.logs) == 0 && c.db.logGiven {
		c.logs = multiFlag{c.db.log}
	}
	for i, name := range c.logs {
		if err := checkLogName(name); err != nil {
			return err
		}
		if slices.Contains(c.logs[:i], name) {
			return usagef("--log %s: given twice", name)
		}
	}
	fromURL, err := trail.ParseStoreURL(c.from)
	if err != nil {
		return usagef("--from: %v", err)
	}
	toURL, err := trail.ParseStoreURL(c.to)
	if err != nil {
		return usagef("--to: %v", err)
	}
	if fromURL.String() == toURL.String() || fromURL.Scheme == "sqlite" && toURL.Scheme == "sqlite" && samePath(fromURL.Dir, toURL.Dir) {
		return usagef("--from and --to name the same store")
	}

	fromOpts := trail.Options{ReadOnly: true}
	if fromURL.Scheme != "sqlite" {
		// Read-only, the store reads no secrets; the copy of its signing
		// keys does, with its master key.
		path := cmp.Or(c.fromKey, c.masterKeyFile)
		if path == "" {
			return usagef("--from %s keeps its signing keys sealed: give its master key with --from-master-key-file or --master-key-file", fromURL.Display())
		}
		if fromOpts.MasterKey, err = trail.LoadMasterKey(path); err != nil {
			return err
		}
	}
	from, err := trail.OpenStore(ctx, fromURL.String(), fromOpts)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer from.Close()
	// Nothing is made at --to for a log the source lacks.
	for _, name := range c.logs {
		if _, err := from.Log(ctx, name); errors.Is(err, trail.ErrNotFound) {
			return fmt.Errorf("--from %s has no log %q", fromURL.Display(), name)
		} else if err != nil {
			return fmt.Errorf("--from: log %q: %w", name, err)
		}
	}

	var toOpts trail.Options
	createdKey := "" // the master key file made for the target
	if toURL.Scheme != "sqlite" {
		path := cmp.Or(c.toKey, c.masterKeyFile)
		if path == "" {
			return usagef("--to %s keeps the signing keys sealed with a master key: give --to-master-key-file or --master-key-file", toURL.Display())
		}
		created, err := ensureMasterKey(path)
		if err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		if created {
			createdKey = path
		}
		if toOpts.MasterKey, err = trail.LoadMasterKey(path); err != nil {
			return err
		}
	}
	to, err := trail.OpenStore(ctx, toURL.String(), toOpts)
	if errors.Is(err, trail.ErrNotInitialized) {
		to, err = trail.InitStore(ctx, toURL.String(), toOpts)
	}
	if err != nil {
		if createdKey != "" {
			// It sealed nothing: left behind, it would pass for the
			// target's key.
			os.Remove(createdKey)
		}
		return fmt.Errorf("--to: %w", err)
	}
	defer to.Close()

	var bar *progress
	var barLog string
	start := c.env.now()
	rep, err := trail.Copy(ctx, from, to, trail.CopyOptions{
		Logs: c.logs,
		Progress: func(p trail.CopyProgress) {
			if p.Log != barLog {
				bar.clear()
				bar, barLog = newProgress(c.env, "copy "+p.Log), p.Log
			}
			bar.update(p.Done, p.Total, "events")
		},
	})
	bar.clear()
	elapsed := c.env.now().Sub(start)
	if cerr := to.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("--to: close: %w", cerr)
	}
	c.print(rep, elapsed, createdKey)
	return err
}

// print writes the summary of rep, a copy that took elapsed, which made
// the master key file createdKey for the target ("" for none).
func (c *copyCommand) print(rep trail.CopyReport, elapsed time.Duration, createdKey string) {
	res := copyResult{Logs: []copyLogResult{}, Events: rep.Events(), Seconds: elapsed.Seconds(), CreatedMasterKeyFile: createdKey}
	for _, l := range rep.Logs {
		res.Logs = append(res.Logs, copyLogResult{
			Name: l.Name, Created: l.Created, From: l.From, Size: l.Size, Events: l.Events,
			Checkpoints: l.Checkpoints, Keys: l.Keys, Revoked: l.Revoked, KeysUnrecorded: l.KeysUnrecorded,
			Idempotency: l.Idempotency, IdempotencyUnreadable: l.IdempotencyUnreadable, Done: l.Done,
		})
	}
	w := c.env.stdout
	if c.json {
		json.NewEncoder(w).Encode(res)
		return
	}
	if createdKey != "" {
		fmt.Fprintf(w, "Created the master key %s for --to (secret: give it to every trail serve on that database, and back it up apart from the database's backups).\n", createdKey)
	}
	for _, l := range res.Logs {
		switch {
		case !l.Done && l.Events == 0:
			fmt.Fprintf(w, "Log %q: nothing copied by this run; the target's log is as it was.\n", l.Name)
		case !l.Done:
			fmt.Fprintf(w, "Log %q: stopped at %s of %s events (copied %s now).\n", l.Name, commas(l.From+l.Events), commas(l.Size), commas(l.Events))
		case l.Events == 0 && !l.Created:
			fmt.Fprintf(w, "Log %q: already copied, %s events.\n", l.Name, commas(l.Size))
		default:
			how := "copied"
			if l.Created {
				how = "created,"
			}
			fmt.Fprintf(w, "Log %q: %s %s in %s, from %s to %s.\n", l.Name, how, counted(l.Events, "event"), counted(int64(l.Checkpoints), "commit"), commas(l.From), commas(l.Size))
		}
		if l.Keys > 0 || l.Revoked > 0 {
			fmt.Fprintf(w, "  API keys: %d copied, %d revoked as in the source.\n", l.Keys, l.Revoked)
		}
		if l.KeysUnrecorded > 0 {
			fmt.Fprintf(w, "  API keys: %d of the source's left behind, as the copied events do not record their creation: created since the copy began (the next run copies them), or added outside Trail (run trail verify on the source).\n", l.KeysUnrecorded)
		}
		if l.Idempotency > 0 {
			fmt.Fprintf(w, "  Idempotency keys: %s copied: retries of those appends through the target get their first receipts.\n", commas(int64(l.Idempotency)))
		}
		if l.IdempotencyUnreadable > 0 {
			fmt.Fprintf(w, "  Warning: %s idempotency records of the source could not be read, or name events its log does not hold (run trail verify on it), and were left behind; retries of those appends would append again.\n", commas(int64(l.IdempotencyUnreadable)))
		}
	}
	rate := ""
	if s := elapsed.Seconds(); s >= 0.5 {
		rate = fmt.Sprintf(" (%s events/s)", commas(int64(float64(res.Events)/s)))
	}
	logs := "logs"
	if len(res.Logs) == 1 {
		logs = "log"
	}
	fmt.Fprintf(w, "Copied %s of %d %s in %s%s.\n", counted(res.Events, "event"), len(res.Logs), logs, elapsed.Round(time.Millisecond), rate)
}

// counted returns n with commas, and noun, in the plural unless n is 1.
func counted(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return commas(n) + " " + noun + "s"
}
