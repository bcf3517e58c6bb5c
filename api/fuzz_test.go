package api

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
)

// ParseQuery takes any query string without a panic: a *ParamError naming
// the parameter, or a query whose Values read back the same.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "actor=a&action=user.*&limit=10&cursor=5", "since=2026-01-01T00:00:00Z&until=x",
		"limit=-1", "a=1&a=2", "q=%zz", "outcome=failure&ip=::1", "hide_reads=true&since=2026-01-01T00:00:00.5%2B02:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Name == "" {
				t.Fatalf("ParseQuery(%q) = %v, want a *ParamError naming the parameter", raw, err)
			}
			return
		}
		if q.Limit < 0 {
			t.Fatalf("ParseQuery(%q).Limit = %d", raw, q.Limit)
		}
		back, err := ParseQuery(q.Values())
		if err != nil {
			t.Fatalf("ParseQuery(%q).Values() = %s, which does not parse: %v", raw, q.Values().Encode(), err)
		}
		// Times come back in UTC, the same instant.
		if !back.Since.Equal(q.Since) || !back.Until.Equal(q.Until) {
			t.Fatalf("ParseQuery(%q): times %v, %v came back as %v, %v", raw, q.Since, q.Until, back.Since, back.Until)
		}
		back.Since, back.Until = q.Since, q.Until
		if !reflect.DeepEqual(back, q) {
			t.Fatalf("ParseQuery(%q) = %+v; its Values read back as %+v", raw, q, back)
		}
	})
}
