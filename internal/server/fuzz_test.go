package server

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

func FuzzSplitBody(f *testing.F) {
	for _, s := range []string{
		`{"actor":{"id":"a"},"action":"user.login"}`,
		`{"events":[{"actor":{"id":"a"},"action":"user.login"},{}]}`,
		`{"events":{}}`, `{"events":[1,"x",null]}`, `[]`, ``, "{\"a\":1}\n\n{\"b\":2}\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		var raws [][]byte
		var err error
		if ndjson {
			raws, err = splitNDJSON(body)
		} else {
			raws, _, err = splitJSON(body)
		}
		if err != nil {
			var ve *event.Error
			if !errors.As(err, &ve) {
				t.Fatalf("split error %v is not a *event.Error", err)
			}
			return
		}
		for _, raw := range raws {
			event.Decode(raw)
		}
	})
}

// The viewer's filters, from any URL: a query or an error naming the
// filter, never a panic; and the URL built back from them reads the same.
func FuzzViewerFilters(f *testing.F) {
	for _, s := range []string{
		"", "action=user.*&ip=203.0.113.7", "range=custom&since=2026-03-01T12:00&until=2026-03-01T13:00:00Z",
		"range=24h", "range=x", "target=user:u_1", "target=:", "since=2026-03-01T12:00",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: raw}}
		fl := viewerFilters(r)
		q, err := filterQuery(fl, now)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.field == "" {
				t.Fatalf("filterQuery(%q) = %v, want a 400 naming the filter", raw, err)
			}
			return
		}
		back := viewerFilters(&http.Request{URL: &url.URL{RawQuery: pageParams(fl).Encode()}})
		if fl.Range != "custom" {
			fl.Since, fl.Until = "", "" // the page takes them only with a custom range
		}
		if back != fl {
			t.Fatalf("filters %+v came back from their URL as %+v", fl, back)
		}
		if fl.Range != "" && fl.Range != "custom" && !q.Since.Before(now) {
			t.Fatalf("range %q gave since %v, want before now", fl.Range, q.Since)
		}
	})
}
