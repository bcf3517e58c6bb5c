package event

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads RFC 8259 JSON text. It is strict where encoding/json is
// lenient: strings must be valid UTF-8 and must not escape a lone UTF-16
// surrogate, and objects must not repeat a key.
//
// Its methods return errors whose Field is relative to the value being read;
// each caller prefixes its own path step with (*Error).under, so paths are
// only built when something is wrong.
type scanner struct {
	src    string
	pos    int
	buf    []byte // scratch space for strings with escapes
	spaced bool   // whitespace was skipped
	// keyEscaped says whether the key members last passed on held escapes.
	keyEscaped bool
}

func (s *scanner) skipSpace() {
	start := s.pos
	for s.pos < len(s.src) && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t' || s.src[s.pos] == '\n' || s.src[s.pos] == '\r') {
		s.pos++
	}
	if s.pos != start {
		s.spaced = true
	}
}

// atEnd skips whitespace and reports whether the input is used up.
func (s *scanner) atEnd() bool {
	s.skipSpace()
	return s.pos == len(s.src)
}

// peek skips whitespace and returns the next byte, or 0 at the end of input
// (a 0 byte is never valid where a caller peeks).
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

// syntaxError describes the byte at s.pos as unexpected.
func (s *scanner) syntaxError() *Error {
	if s.pos >= len(s.src) {
		return errAt("", "invalid JSON: unexpected end of input")
	}
	c := s.src[s.pos]
	if c < 0x20 || c >= 0x7f {
		return errAt("", fmt.Sprintf("invalid JSON: unexpected byte 0x%02x at offset %d", c, s.pos))
	}
	return errAt("", fmt.Sprintf("invalid JSON: unexpected %q at offset %d", c, s.pos))
}

// typeError reports that the value at s.pos is not of the kind wanted ("a
// string"), or a syntax error if no JSON value starts there.
func (s *scanner) typeError(want string) *Error {
	switch c := s.peek(); {
	case c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' || c == '-' || '0' <= c && c <= '9':
		return errAt("", "must be "+want)
	}
	return s.syntaxError()
}

// expect consumes the byte c after optional whitespace.
func (s *scanner) expect(c byte) *Error {
	if s.peek() != c {
		return s.syntaxError()
	}
	s.pos++
	return nil
}

// literal consumes the literal word (true, false or null) at s.pos.
func (s *scanner) literal(word string) *Error {
	if len(s.src)-s.pos < len(word) || s.src[s.pos:s.pos+len(word)] != word {
		return s.syntaxError()
	}
	s.pos += len(word)
	return nil
}

// null consumes a null literal if one is next and reports whether it did.
func (s *scanner) null() (bool, *Error) {
	if s.peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

// str reads the string starting at s.pos, which must be '"', and returns its
// decoded text and whether it held escapes.
func (s *scanner) str() (string, bool, *Error) {
	start := s.pos + 1
	for i := start; i < len(s.src); i++ {
		c := s.src[i]
		if c == '"' {
			s.pos = i + 1
			return s.src[start:i], false, nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return s.strSlow(start, i)
		}
	}
	s.pos = len(s.src)
	return "", false, s.syntaxError()
}

// strSlow continues str from src[i], the first byte that is not plain ASCII.
func (s *scanner) strSlow(start, i int) (string, bool, *Error) {
	var b []byte // decoded text, once an escape has been seen
	lit := start // start of the text not yet copied to b
	for i < len(s.src) {
		c := s.src[i]
		switch {
		case c == '"':
			s.pos = i + 1
			if b == nil {
				return s.src[start:i], false, nil
			}
			b = append(b, s.src[lit:i]...)
			s.buf = b[:0]
			return string(b), true, nil
		case c < 0x20:
			s.pos = i
			return "", false, errAt("", fmt.Sprintf("invalid JSON: unescaped control character 0x%02x in string", c))
		case c == '\\':
			if b == nil {
				b = s.buf[:0]
			}
			b = append(b, s.src[lit:i]...)
			var err *Error
			if b, i, err = s.escape(b, i); err != nil {
				return "", false, err
			}
			lit = i
		case c < 0x80:
			i++
		default:
			r, n := utf8.DecodeRuneInString(s.src[i:])
			if r == utf8.RuneError && n == 1 {
				s.pos = i
				return "", false, errAt("", "invalid UTF-8")
			}
			i += n
		}
	}
	s.pos = len(s.src)
	return "", false, s.syntaxError()
}

// escape decodes the escape sequence at src[i] (a backslash), appending it to
// b, and returns the index just after it.
func (s *scanner) escape(b []byte, i int) ([]byte, int, *Error) {
	if i+1 >= len(s.src) {
		s.pos = len(s.src)
		return b, i, s.syntaxError()
	}
	switch c := s.src[i+1]; c {
	case '"', '\\', '/':
		return append(b, c), i + 2, nil
	case 'b':
		return append(b, '\b'), i + 2, nil
	case 'f':
		return append(b, '\f'), i + 2, nil
	case 'n':
		return append(b, '\n'), i + 2, nil
	case 'r':
		return append(b, '\r'), i + 2, nil
	case 't':
		return append(b, '\t'), i + 2, nil
	case 'u':
		r, ok := hex4(s.src, i+2)
		if !ok {
			s.pos = i
			return b, i, errAt("", "invalid JSON: bad \\u escape in string")
		}
		i += 6
		if utf16.IsSurrogate(r) {
			r2, ok := rune(0), false
			if r < 0xdc00 && i+1 < len(s.src) && s.src[i] == '\\' && s.src[i+1] == 'u' {
				r2, ok = hex4(s.src, i+2)
			}
			if !ok || r2 < 0xdc00 || r2 > 0xdfff {
				s.pos = i - 6
				return b, i, errAt("", "invalid JSON: \\u escape of a lone UTF-16 surrogate")
			}
			r = utf16.DecodeRune(r, r2)
			i += 6
		}
		return utf8.AppendRune(b, r), i, nil
	}
	s.pos = i
	return b, i, errAt("", "invalid JSON: bad escape in string")
}

func hex4(src string, i int) (rune, bool) {
	if len(src)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(src[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads the number at s.pos and returns its text.
func (s *scanner) number() (string, *Error) {
	start := s.pos
	i := s.pos
	if i < len(s.src) && s.src[i] == '-' {
		i++
	}
	switch {
	case i < len(s.src) && s.src[i] == '0':
		i++
		if i < len(s.src) && '0' <= s.src[i] && s.src[i] <= '9' {
			s.pos = i
			return "", s.syntaxError() // a leading zero
		}
	case i < len(s.src) && '1' <= s.src[i] && s.src[i] <= '9':
		i = skipDigits(s.src, i)
	default:
		s.pos = i
		return "", s.syntaxError()
	}
	if i < len(s.src) && s.src[i] == '.' {
		j := skipDigits(s.src, i+1)
		if j == i+1 {
			s.pos = j
			return "", s.syntaxError()
		}
		i = j
	}
	if i < len(s.src) && (s.src[i] == 'e' || s.src[i] == 'E') {
		i++
		if i < len(s.src) && (s.src[i] == '+' || s.src[i] == '-') {
			i++
		}
		j := skipDigits(s.src, i)
		if j == i {
			s.pos = j
			return "", s.syntaxError()
		}
		i = j
	}
	s.pos = i
	return s.src[start:i], nil
}

func skipDigits(src string, i int) int {
	for i < len(src) && '0' <= src[i] && src[i] <= '9' {
		i++
	}
	return i
}

// members reads the object at s.pos (after optional whitespace), calling
// member with the scanner placed just before each key's value. Errors from
// member are taken to be relative to that value.
func (s *scanner) members(member func(key string) *Error) *Error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.syntaxError()
		}
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		s.keyEscaped = escaped
		if err := s.expect(':'); err != nil {
			return err.under(pathKey(key))
		}
		if err := member(key); err != nil {
			return err.under(pathKey(key))
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntaxError()
		}
	}
}

// elements reads the array at s.pos (after optional whitespace), calling elem
// with the scanner placed just before each element.
func (s *scanner) elements(elem func(i int) *Error) *Error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err.under(pathIndex(i))
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.syntaxError()
		}
	}
}

// decodeDepth bounds nesting inside metadata and changes in Decode, which
// knows no Limits, so that no input can make the scanner recurse without end.
const decodeDepth = 9000

// rawRules say what value checks while it reads a value of any type.
type rawRules struct {
	// maxDepth is the deepest nesting allowed: an object or array counts one.
	maxDepth int
	// strict applies Prepare's rules: numbers must be written as RFC 8785
	// serialization writes them (so they keep their value and their text),
	// and strings must hold no control characters other than tab, newline
	// and carriage return.
	strict bool
	// collect asks for every string value and number (not keys) to be
	// appended to text, separated by spaces.
	collect bool
	text    []byte
	// mayChange is set, under strict, when the value may not be in RFC 8785
	// canonical form. It errs towards true: whitespace (which the scanner
	// records), keys out of order and strings with escapes. (Numbers not
	// written as RFC 8785 writes them are rejected under strict.)
	mayChange bool
}

// value reads any JSON value at s.pos. depth is the number of arrays and
// objects around it.
func (s *scanner) value(depth int, rr *rawRules) *Error {
	switch c := s.peek(); {
	case c == '{':
		if depth >= rr.maxDepth {
			return errAt("", fmt.Sprintf("nested deeper than %d levels", rr.maxDepth))
		}
		var small [8]string
		keys := small[:0]
		var seen map[string]bool // replaces keys for large objects
		prev := ""
		return s.members(func(key string) *Error {
			if rr.strict {
				if r := textProblem(key, true); r != "" {
					return errAt("", "key "+r)
				}
				if s.keyEscaped || len(keys) > 0 && !utf16Less(prev, key) {
					rr.mayChange = true
				}
				prev = key
			}
			if seen != nil {
				if seen[key] {
					return errAt("", "duplicate key")
				}
				seen[key] = true
			} else {
				for _, k := range keys {
					if k == key {
						return errAt("", "duplicate key")
					}
				}
				keys = append(keys, key)
				if len(keys) == 32 {
					seen = make(map[string]bool)
					for _, k := range keys {
						seen[k] = true
					}
				}
			}
			return s.value(depth+1, rr)
		})
	case c == '[':
		if depth >= rr.maxDepth {
			return errAt("", fmt.Sprintf("nested deeper than %d levels", rr.maxDepth))
		}
		return s.elements(func(int) *Error { return s.value(depth+1, rr) })
	case c == '"':
		v, escaped, err := s.str()
		if err != nil {
			return err
		}
		if rr.strict && escaped {
			if r := textProblem(v, true); r != "" {
				return errAt("", r)
			}
			rr.mayChange = true
		}
		rr.add(v)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		n, err := s.number()
		if err != nil {
			return err
		}
		if rr.strict {
			if r := numberProblem(n); r != "" {
				return errAt("", r)
			}
			if r := numberNotCanonical(n); r != "" {
				return errAt("", r)
			}
		}
		rr.add(n)
	default:
		return s.syntaxError()
	}
	return nil
}

func (rr *rawRules) add(v string) {
	if !rr.collect || v == "" {
		return
	}
	if len(rr.text) > 0 {
		rr.text = append(rr.text, ' ')
	}
	rr.text = append(rr.text, v...)
}

// rawValue reads any JSON value at s.pos and returns a copy of its text.
func (s *scanner) rawValue(rr *rawRules) ([]byte, *Error) {
	s.skipSpace()
	start := s.pos
	if err := s.value(0, rr); err != nil {
		return nil, err
	}
	return []byte(s.src[start:s.pos]), nil
}

// utf16Less reports whether a sorts before b when both are compared as
// sequences of UTF-16 code units, the order of keys in RFC 8785. a and b must
// be valid UTF-8.
func utf16Less(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			// A supplementary character is a surrogate pair in UTF-16, and
			// its high surrogate sorts below U+E000 to U+FFFF.
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				return ua < ub
			}
			return ra < rb
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b != ""
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		h, _ := utf16.EncodeRune(r)
		return h
	}
	return r
}
