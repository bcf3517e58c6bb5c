package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"strings"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/durable"
	"github.com/trail-audit/trail/internal/verify"
)

// exportCommand writes every matching event, oldest first.
type exportCommand struct {
	env    *env
	db     dbFlags
	q      queryFlags
	format string
	out    string
	raw    bool
}

func (c *exportCommand) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	c.db.register(fs, c.db)
	c.q.register(fs)
	fs.StringVar(&c.format, "format", "", "`FORMAT`: ndjson or csv (default csv if --out ends in .csv, else ndjson)")
	fs.StringVar(&c.out, "out", "", "write to `FILE` (mode 0600, replaced only once the export is complete)\ninstead of stdout (- is stdout)")
	fs.BoolVar(&c.raw, "csv-raw", false, "write CSV cells as they are, without the ' that guards against formulas")
	return fs
}

func (c *exportCommand) Usage() string {
	return usage(c.flagSet(), "trail export [--format ndjson|csv] [--out FILE] [filters]", `
Export writes every event that matches the filters (the same as search's),
oldest first, streaming in constant memory.

NDJSON lines are the canonical JSON of the events, the exact bytes hashed
into the log. CSV has a header row and the columns
  `+strings.Join(trail.CSVHeader, ",")+`
with times in RFC 3339 (UTC), targets as TYPE:ID joined by ';', and
metadata and changes as canonical JSON.

Audit events carry text chosen by clients (names, reasons, user agents). So
that a spreadsheet does not run such text as a formula, a CSV cell that
begins with =, +, -, @, tab or carriage return gets a leading '. --csv-raw
turns this off, for tools other than spreadsheets.`, `
  trail export > all.ndjson
  trail export --format csv --since 2026-03-01 --until 2026-04-01 --out march.csv
  trail export --actor alice --action 'user.*' | jq -c '{time, action}'`)
}

func (c *exportCommand) Run(ctx context.Context, args []string) error {
	if err := noArgs(c.flagSet(), args); err != nil {
		return err
	}
	if err := c.db.checkOutput("--out", c.out); err != nil {
		return err
	}
	if c.out == "-" {
		c.out = "" // stdout
	}
	format := c.format
	if format == "" {
		format = "ndjson"
		if strings.EqualFold(filepath.Ext(c.out), ".csv") {
			format = "csv"
		}
	}
	if format != "ndjson" && format != "csv" {
		return usagef("--format %q: want ndjson or csv", c.format)
	}
	q, err := c.q.query(c.env.now())
	if err != nil {
		return err
	}
	var events iter.Seq2[*event.Event, error]
	var size int64
	cl, err := c.db.client()
	if err != nil {
		return err
	}
	if cl != nil {
		info, err := cl.Log(ctx)
		if err != nil {
			return err
		}
		size, events = info.TreeSize, remoteEvents(ctx, cl, q)
	} else {
		db, l, err := c.db.open(ctx, true)
		if err != nil {
			return err
		}
		defer db.Close()
		size, events = l.Size(), l.Events(ctx, q)
	}

	var dst io.Writer = c.env.stdout
	var out *durable.File
	if c.out != "" {
		if out, err = durable.Create(c.out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer func() {
			if out != nil {
				out.Abort()
			}
		}()
		dst = out
	}
	bw := bufio.NewWriterSize(dst, 256<<10)
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(bw)
		cw.Write(trail.CSVHeader)
	}
	row := make([]string, len(trail.CSVHeader))
	var buf []byte
	write := func(e *event.Event) error {
		if cw != nil {
			return cw.Write(trail.CSVRecord(row, e, !c.raw))
		}
		buf = append(canon.Append(buf[:0], e), '\n')
		_, err := bw.Write(buf)
		return err
	}

	bar := newProgress(c.env, "export")
	if c.out == "" && c.env.stdoutTTY {
		bar = nil // the events on the terminal would be drawn over
	}
	defer bar.clear()
	var n int64
	for e, err := range events {
		if err != nil {
			// What was exported ends with a whole line.
			bw.Flush()
			return queryError(err)
		}
		if err := write(e); err != nil {
			return err
		}
		n++
		if bar != nil {
			bar.update(e.Seq+1, size, commas(n)+" exported")
		}
	}
	if cw != nil {
		if cw.Flush(); cw.Error() != nil {
			return cw.Error()
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if out != nil {
		err := out.Commit()
		out = nil
		if err != nil {
			return err
		}
	}
	bar.clear()
	if c.out != "" || c.env.stderrTTY {
		dest := "stdout"
		if c.out != "" {
			dest = c.out
		}
		fmt.Fprintf(c.env.stderr, "exported %s events to %s\n", commas(n), dest)
	}
	return nil
}

// remoteEvents yields the events of the server's export (NDJSON), which
// the CLI then writes in the format asked for.
func remoteEvents(ctx context.Context, cl *client.Client, q api.Query) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		body, err := cl.Export(ctx, q, "ndjson")
		if err != nil {
			yield(nil, err)
			return
		}
		defer body.Close()
		r := verify.NewExportReader(body, client.ExportError)
		for n := 0; ; n++ {
			e, err := r.Next()
			var apiErr *client.APIError
			switch {
			case err == io.EOF:
				return
			case err == nil, errors.As(err, &apiErr):
			case ctx.Err() != nil:
				err = ctx.Err()
			default:
				// A line that does not decode: the connection broke off
				// mid-line, or the server sent it so. Not a usage error
				// of any flag, which an *event.Error it wraps would be
				// taken for (queryError).
				err = fmt.Errorf("trail server: the export broke off or holds a malformed line, after %d events: %v", n, err)
			}
			// An error line is the server's last word: the export is cut
			// short.
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
