package event

import "strings"

// Sanitize makes a string taken from a request (a header, a path, a query
// parameter) acceptable in an event field: valid UTF-8 (invalid bytes
// become U+FFFD), no control characters, at most n bytes (cut on a rune
// boundary). Middleware that records requests uses it so that a hostile
// request cannot make its own audit event fail validation.
func Sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
