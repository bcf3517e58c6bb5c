package derive

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// referenceValues is appendValues by encoding/json's token stream, for
// comparison: every string value and number in document order, keys left
// out.
func referenceValues(t *testing.T, src string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var words []string
	var open []json.Delim
	key := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		_, isString := tok.(string)
		isKey := key && isString
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				open = append(open, v)
			default:
				open = open[:len(open)-1]
			}
		case string:
			if !isKey && v != "" {
				words = append(words, v)
			}
		case json.Number:
			words = append(words, string(v))
		}
		// The next token is a key when it starts a member of an object.
		inObject := len(open) > 0 && open[len(open)-1] == '{'
		switch d, _ := tok.(json.Delim); {
		case isKey:
			key = false
		case d == '{' || d == '[':
			key = d == '{'
		default: // a value or the end of one
			key = inObject
		}
	}
	return strings.Join(words, " ")
}

func TestAppendValues(t *testing.T) {
	docs := []string{
		`{}`,
		`[]`,
		`"x"`,
		`12`,
		`{"a":"b"}`,
		`{"a":1,"b":-2.5e+21,"c":true,"d":null,"e":false}`,
		`{"k":"\"q\" \u00e9","l":"a\\b","m":"\n\t"}`,
		`{"a":{"b":{"c":"deep"},"d":["x",{"e":"y","f":[1,[2,"z"]]}]},"g":""}`,
		`[{"a":"1"},{"b":"2"},["3",{"c":"4"}]]`,
		`{"emoji":"😀","sur":"\ud83d\ude00"}`,
		`{ "spaced" : [ 1 , "two" ] }`,
	}
	for _, d := range docs {
		got, ok := appendValues(nil, d)
		if !ok {
			t.Errorf("appendValues(%s) failed", d)
			continue
		}
		if want := referenceValues(t, d); string(got) != want {
			t.Errorf("appendValues(%s) = %q, want %q", d, got, want)
		}
		// Appending after existing text separates with one space.
		pre, _ := appendValues([]byte("pre"), d)
		want := "pre"
		if len(got) > 0 {
			want += " " + string(got)
		}
		if string(pre) != want {
			t.Errorf("appendValues(pre, %s) = %q, want %q", d, pre, want)
		}
	}
	for _, bad := range []string{`{"a":"b"`, `"open`, `]`, `{"a":nope}`, `{"a":1}}`, `@`} {
		if got, ok := appendValues([]byte("keep"), bad); ok || !bytes.Equal(got, []byte("keep")) {
			t.Errorf("appendValues(keep, %s) = %q, %v; want keep, false", bad, got, ok)
		}
	}
}

// TestAppendValuesWorkload compares appendValues with the reference on the
// metadata of the event file the event package tests decode.
func TestAppendValuesWorkload(t *testing.T) {
	data, err := os.ReadFile("../../event/testdata/workload.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range bytes.Lines(data) {
		var e struct{ Metadata json.RawMessage }
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		if len(e.Metadata) == 0 {
			continue
		}
		n++
		got, ok := appendValues(nil, string(e.Metadata))
		if want := referenceValues(t, string(e.Metadata)); !ok || string(got) != want {
			t.Fatalf("appendValues(%s) = %q, %v; want %q", e.Metadata, got, ok, want)
		}
	}
	if n < 100 {
		t.Fatalf("only %d events with metadata in the file", n)
	}
}
