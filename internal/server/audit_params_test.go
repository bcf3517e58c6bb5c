package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// lastRead returns the action and metadata of the newest event of log
// acme, which a read just appended.
func (v *viewerEnv) lastRead() (string, map[string]string) {
	v.t.Helper()
	l, err := v.db.Log(context.Background(), "acme")
	if err != nil {
		v.t.Fatal(err)
	}
	e, err := l.GetSeq(context.Background(), l.Size()-1)
	if err != nil {
		v.t.Fatal(err)
	}
	md := map[string]string{}
	if len(e.Metadata) > 0 {
		if err := json.Unmarshal(e.Metadata, &md); err != nil {
			v.t.Fatalf("metadata %s: %v", e.Metadata, err)
		}
	}
	return e.Action, md
}

// TestReadRecordsWhatWasRead: a read's record says what was read, and
// no request can make it say otherwise: the viewer's pages, which ignore
// parameters they do not know, record the filters they applied; names
// that differ from another only by control characters are recorded
// escaped; a long value says it was cut; a stream records where it
// resumed.
func TestReadRecordsWhatWasRead(t *testing.T) {
	v := newViewerEnv(t)
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)

	// A decoy named q plus a control character, and padding past the
	// parameters a record holds, cannot hide the filter applied.
	var pad []string
	for i := range 40 {
		pad = append(pad, fmt.Sprintf("aa%02d=x", i))
	}
	resp, body := v.get(c, "/?q=password&q%01=harmless&actor=anonymous&actor%01=nobody&"+strings.Join(pad, "&"))
	if resp.StatusCode != 200 || !strings.Contains(body, "bad password") {
		t.Fatalf("GET / with decoys = %d, want 200 and the matching event", resp.StatusCode)
	}
	action, md := v.lastRead()
	if action != trail.ActionSearch || md["q"] != "password" || md["actor"] != "anonymous" || len(md) != 2 {
		t.Errorf("GET / with decoys recorded %s %v, want trail.search of q=password and actor=anonymous only", action, md)
	}

	// A filter the page refuses still shows the log's actions and counts.
	resp, body = v.get(c, "/?range=bogus")
	if resp.StatusCode != 200 || !strings.Contains(body, "Filter not applied") {
		t.Fatalf("GET /?range=bogus = %d, want 200 and the page saying the filter was not applied", resp.StatusCode)
	}
	if action, md := v.lastRead(); action != trail.ActionStats || md["range"] != "bogus" {
		t.Errorf("GET /?range=bogus recorded %s %v, want trail.stats with range=bogus", action, md)
	}

	// The overview records the range it shows, not a decoy's.
	resp, _ = v.get(c, "/overview?range=all&trail=show&range%01=24h&trail%01=hide")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /overview = %d", resp.StatusCode)
	}
	if action, md := v.lastRead(); action != trail.ActionStats || md["range"] != "all" || md["trail"] != "show" || len(md) != 2 {
		t.Errorf("GET /overview with decoys recorded %s %v, want trail.stats of range=all, trail=show", action, md)
	}

	// The event page, which takes any parameter, records names and
	// values as sent.
	long := strings.Repeat("v", 600)
	resp, _ = v.get(c, "/events/"+v.eventID+"?x%01=a%02b&x=plain&y="+long)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events/{id} with odd parameters = %d", resp.StatusCode)
	}
	action, md = v.lastRead()
	if action != trail.ActionGet || md["x"] != "plain" || md["x%01"] != "a%02b" {
		t.Errorf("GET /events/{id} recorded %s %v, want x=plain and x%%01=a%%02b", action, md)
	}
	if y := md["y"]; len(y) > 512 || !strings.HasSuffix(y, "(600 bytes)") || !strings.HasPrefix(y, "vvvv") {
		t.Errorf("a 600-byte value was recorded as %q, want it cut to 512 bytes and saying so", y)
	}

	// A "%" sent is told from an escape; a client's more_parameters from
	// the record's own.
	resp, _ = v.get(c, "/events/"+v.eventID+"?lit=a%250D&cr=a%0D&more_parameters=5+not+recorded")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events/{id} with a %% and more_parameters = %d", resp.StatusCode)
	}
	if _, md := v.lastRead(); md["lit"] != "a%250D" || md["cr"] != "a%0D" || md["more%5Fparameters"] != "5 not recorded" || md["more_parameters"] != "" {
		t.Errorf("GET /events/{id} with a %% and more_parameters recorded %v", md)
	}

	// A read with more parameters than an event's metadata holds is
	// served and recorded with the first maxAuditParams of them.
	var many []string
	for i := range 80 {
		many = append(many, fmt.Sprintf("p%02d=%s", i, strings.Repeat("v", 500)))
	}
	resp, _ = v.get(c, "/events/"+v.eventID+"?"+strings.Join(many, "&"))
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events/{id} with 80 parameters = %d", resp.StatusCode)
	}
	if action, md := v.lastRead(); action != trail.ActionGet || len(md) != 33 || md["p00"] == "" || md["p31"] == "" || md["more_parameters"] != "48 not recorded" {
		t.Errorf("the get with 80 parameters recorded %s with %d of them, want 32 and a count of the rest", action, len(md))
	}

	// The events page takes since only with a custom range; /rows takes
	// its own limit.
	resp, _ = v.get(c, "/?since=2000-01-01T00:00:00Z")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /?since= = %d", resp.StatusCode)
	}
	if _, md := v.lastRead(); md["since"] != "" {
		t.Errorf("GET /?since= without a range, which the page ignores, recorded %v", md)
	}
	resp, _ = v.get(c, "/rows?limit=1")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /rows?limit=1 = %d", resp.StatusCode)
	}
	if _, md := v.lastRead(); md["limit"] != "100" {
		t.Errorf("GET /rows?limit=1, which serves 100 rows, recorded %v", md)
	}

	// A stream resumed from the start of the log says so.
	for _, path := range []string{"/v1/tail", "/live"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", v.srv.URL+path, nil)
		req.Header.Set("Last-Event-ID", "-1")
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s with Last-Event-ID -1 = %v, %v", path, resp, err)
		}
		buf := make([]byte, 1)
		resp.Body.Read(buf) // the stream has begun: the read is recorded
		resp.Body.Close()
		cancel()
		if action, md := v.lastRead(); action != trail.ActionTail || md["last_event_id"] != "-1" {
			t.Errorf("GET %s with Last-Event-ID -1 recorded %s %v, want trail.tail with last_event_id=-1", path, action, md)
		}
	}
}

// TestLiveCarriageReturn: an event whose reason holds a carriage return,
// which ends a line of Server-Sent Events as a line feed does, arrives
// in the viewer's live rows without one, its reason whole.
func TestLiveCarriageReturn(t *testing.T) {
	v := newViewerEnv(t)
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)
	l, err := v.db.Log(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	from := l.Size()
	if _, err := l.AppendBatch(context.Background(), []event.Event{
		{Actor: event.Actor{ID: "mallory"}, Action: "doc.delete", Reason: "routine\revent: x\rid: 99"},
		{Actor: event.Actor{ID: "dave"}, Action: "doc.read"},
	}); err != nil {
		t.Fatal(err)
	}
	q := api.Query{HideReads: true}.Values()
	q.Set("from", fmt.Sprint(from))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", v.srv.URL+"/live?"+q.Encode(), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stream []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(stream), "doc.read") {
		n, err := resp.Body.Read(buf)
		stream = append(stream, buf[:n]...)
		if err != nil {
			t.Fatalf("live rows ended (%v) before doc.read: %q", err, stream)
		}
	}
	if strings.Contains(string(stream), "\r") {
		t.Errorf("live rows hold a carriage return: %q", stream)
	}
	if !strings.Contains(string(stream), "routine&#13;event: x&#13;id: 99") {
		t.Errorf("live rows = %q, want the reason with its carriage returns as &#13;", stream)
	}
}
