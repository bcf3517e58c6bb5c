package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
)

// Seed inputs for FuzzDecode besides the workload and testdata/fuzz.
// internal/canon's FuzzAppend starts from a copy of them.
var decodeSeeds = []string{
	`{"actor":{"id":"u"},"action":"a","changes":{"before":{"b":[1,2.5,-0,1e21]},"after":null},"metadata":{"k":"\u2028\ud83d\ude00"}}`,
	`{"actor":{"id":"u","name":"\u0000"},"action":"a.b","targets":[null,{"type":"t","id":"i","name":"n"}]}`,
	`{"action":"a","time":"2026-01-01T00:00:00.123+05:30","source":{"ip":"2001:DB8::1"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`,
	`{"action":"a","action":"b"}`,
	`{"metadata":{"n":12345678901234567890}}`,
	`{"reason":"\ud800"}`,
	"{\"reason\":\"\xff\"}",
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	for _, line := range workload(f) {
		f.Add(line)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Index != -1 {
				t.Fatalf("Decode(%q) error = %#v, want *Error with Index -1", data, err)
			}
			return
		}
		compareWithEncodingJSON(t, data, e)

		if err := e.Prepare(now, Limits{}); err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Prepare() error = %#v, want *Error", err)
			}
			return
		}
		// What Prepare accepts, internal/canon's FuzzAppend writes in
		// canonical form and reads back.
	})
}

// compareWithEncodingJSON checks that encoding/json, which is more lenient,
// accepts what Decode accepted and reads the same event from it.
func compareWithEncodingJSON(t *testing.T, data []byte, e Event) {
	t.Helper()
	var ref Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		t.Fatalf("Decode(%q) accepted what encoding/json rejects: %v", data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("Decode(%q) accepted data after the event", data)
	}
	if !e.Time.Equal(ref.Time) {
		t.Fatalf("Decode(%q).Time = %v, encoding/json gives %v", data, e.Time, ref.Time)
	}
	_, eoff := e.Time.Zone()
	_, roff := ref.Time.Zone()
	if eoff != roff {
		t.Fatalf("Decode(%q).Time = %v, encoding/json gives %v", data, e.Time, ref.Time)
	}
	e.Time, ref.Time = time.Time{}, time.Time{}
	if len(e.Targets) == 0 && len(ref.Targets) == 0 {
		e.Targets, ref.Targets = nil, nil
	}
	if !reflect.DeepEqual(e, ref) {
		t.Fatalf("Decode(%q) =\n%#v\nencoding/json gives\n%#v", data, e, ref)
	}
}

// FuzzCanonicalValue checks Prepare's canonicalization, including its
// shortcut for input that is already canonical, against the jcs package.
func FuzzCanonicalValue(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[1.5,-0.25,100,"x"]}`, `{"b":1,"a":2}`, `{"\ue000":1,"😀":2}`, `{"😀":1,"\ue000":2}`,
		`[1e21,1E2,0.000001,0.0000001,-0,1.10]`, `[1e+21,100,0.000001,1e-7,0,1.1]`, `"\u00e9"`, ` {"a" : null} `, `{"a":"\n"}`, `100000000000000000000`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := canonicalValue(raw, 32)
		if err != nil || len(raw) == 0 && got == nil {
			return
		}
		want, jerr := jcs.Transform(raw)
		if jerr != nil {
			t.Fatalf("canonicalValue(%q) = %q, but jcs.Transform fails: %v", raw, got, jerr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("canonicalValue(%q) = %q, want %q", raw, got, want)
		}
		// What is accepted keeps each number as it was written.
		if in, out := numberTexts(t, raw), numberTexts(t, got); !slices.Equal(in, out) {
			t.Fatalf("canonicalValue(%q) = %q: numbers %q became %q", raw, got, in, out)
		}
	})
}

// numberTexts returns the text of every number in the JSON value raw,
// sorted.
func numberTexts(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", raw, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case json.Number:
			out = append(out, string(v))
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	slices.Sort(out)
	return out
}
