package derive

import (
	"encoding/json"
	"strings"
)

// appendValues appends to b every string value and number of the JSON
// value src (object keys left out), each after a space unless b is empty;
// empty strings add nothing. It returns b unchanged and false if src is not
// well-formed enough to read. src is an event's metadata as decoded, so it
// is valid JSON; escaped strings, which canonical JSON keeps for control
// characters, quotes and backslashes only, take the slow path.
func appendValues(b []byte, src string) ([]byte, bool) {
	orig := len(b)
	add := func(s string) {
		if s == "" {
			return
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	var open []byte // the '{' and '[' around the position
	key := false    // the next string is an object's key
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':':
			i++
		case c == ',':
			key = len(open) > 0 && open[len(open)-1] == '{'
			i++
		case c == '{' || c == '[':
			open = append(open, c)
			key = c == '{'
			i++
		case c == '}' || c == ']':
			if len(open) == 0 {
				return b[:orig], false
			}
			open = open[:len(open)-1]
			key = false
			i++
		case c == '"':
			j, escaped := i+1, false
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if j >= len(src) {
				return b[:orig], false
			}
			s := src[i+1 : j]
			if escaped {
				var u string
				if json.Unmarshal([]byte(src[i:j+1]), &u) != nil {
					return b[:orig], false
				}
				s = u
			}
			if key {
				key = false
			} else {
				add(s)
			}
			i = j + 1
		case c == '-' || '0' <= c && c <= '9':
			j := i + 1
			for j < len(src) && strings.IndexByte("0123456789+-.eE", src[j]) >= 0 {
				j++
			}
			add(src[i:j])
			i = j
		case c == 't' || c == 'f' || c == 'n':
			j := i + 1
			for j < len(src) && 'a' <= src[j] && src[j] <= 'z' {
				j++
			}
			if w := src[i:j]; w != "true" && w != "false" && w != "null" {
				return b[:orig], false
			}
			i = j
		default:
			return b[:orig], false
		}
	}
	if len(open) != 0 {
		return b[:orig], false
	}
	return b, true
}
