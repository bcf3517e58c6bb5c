package event

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// Limits bound what a client may send. Zero fields mean the default.
type Limits struct {
	// MaxFutureSkew is how far past the receipt time an event's time may be.
	// Default 5 minutes.
	MaxFutureSkew time.Duration
	// MaxMetadataSize bounds the canonical JSON of metadata, in bytes.
	// Default 32 KiB.
	MaxMetadataSize int
	// MaxDepth bounds the nesting of metadata and of changes.before and
	// changes.after; an object or array counts one level. Default 8.
	MaxDepth int
	// MaxEventSize bounds the canonical form of the whole stored event, in
	// bytes, with the fields Trail assigns counted at their longest.
	// Default and most MaxEntrySize (64 KiB less one byte): a larger
	// value counts as MaxEntrySize. Prepare does not check it: Trail does,
	// when it appends the event.
	MaxEventSize int
}

// MaxEntrySize is the largest a stored event can be in canonical form:
// 65,535 bytes, the most a C2SP tlog-tiles entry bundle holds in one
// entry (its length is a 16-bit number), so that every log can be read
// as tlog-tiles.
const MaxEntrySize = 1<<16 - 1

// DefaultLimits returns the limits that apply when none are configured.
func DefaultLimits() Limits {
	return Limits{
		MaxFutureSkew:   5 * time.Minute,
		MaxMetadataSize: 32 << 10,
		MaxDepth:        8,
		MaxEventSize:    MaxEntrySize,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFutureSkew <= 0 {
		l.MaxFutureSkew = d.MaxFutureSkew
	}
	if l.MaxMetadataSize <= 0 {
		l.MaxMetadataSize = d.MaxMetadataSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxEventSize <= 0 || l.MaxEventSize > MaxEntrySize {
		l.MaxEventSize = d.MaxEventSize
	}
	return l
}

// Length limits on fields, in bytes.
const (
	maxIDLen        = 256 // actor.id, targets[].id, request_id
	maxNameLen      = 256 // actor.name, actor.email, targets[].name
	maxRoleLen      = 64
	maxActionLen    = 128
	maxTargetType   = 64
	maxTargets      = 100
	maxReasonLen    = 4096
	maxUserAgentLen = 1024
)

var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

const timeOutOfRange = "must be between 1970-01-01 and 2262-04-11"

// Prepare validates e and puts it into normal form, in place. now is the
// receipt time, used to reject events from too far in the future.
//
// In normal form Time is in UTC (a zero Time stays zero; Trail later sets it
// to the receipt time), an empty Outcome is Success, Source.IP is written as
// net/netip writes it, Metadata and the sides of Changes hold their RFC 8785
// canonical JSON, and metadata that is null or {} and Changes with neither
// side are nil.
//
// Prepare returns an *Error (with Index -1) for the first rule e breaks, and
// then leaves e unchanged. Among the rules: numbers in metadata and changes
// must come out of RFC 8785 serialization (which goes through an IEEE 754
// double) unchanged, in value, so 12345678901234567890 is rejected rather
// than silently rounded, and in text, so 1.0, -0 and 1E+2 are rejected
// (write 1, 0 and 100); strings must be valid UTF-8 without C0 control
// characters (reason, metadata and changes may hold tab, newline and carriage
// return).
func (e *Event) Prepare(now time.Time, lim Limits) error {
	if err := e.prepare(now, lim.withDefaults()); err != nil {
		return err
	}
	return nil
}

func (e *Event) prepare(now time.Time, lim Limits) *Error {
	n := *e

	a := &n.Actor
	if r := checkText(a.ID, maxIDLen, true, false); r != "" {
		return errAt("actor.id", r)
	}
	switch a.Type {
	case "", ActorUser, ActorService, ActorSystem, ActorAnonymous:
	default:
		return errAt("actor.type", "must be one of user, service, system, anonymous")
	}
	if r := checkText(a.Name, maxNameLen, false, false); r != "" {
		return errAt("actor.name", r)
	}
	if r := checkText(a.Email, maxNameLen, false, false); r != "" {
		return errAt("actor.email", r)
	}
	if r := checkText(a.Role, maxRoleLen, false, false); r != "" {
		return errAt("actor.role", r)
	}

	if n.Action == "" {
		return errAt("action", "required")
	}
	if len(n.Action) > maxActionLen {
		return errAt("action", fmt.Sprintf("longer than %d bytes", maxActionLen))
	}
	if !validAction(n.Action) {
		return errAt("action", "must be lower-case words (a-z, 0-9, _) joined by dots, like user.login")
	}

	if len(n.Targets) > maxTargets {
		return errAt("targets", fmt.Sprintf("more than %d targets", maxTargets))
	}
	for i := range n.Targets {
		t := &n.Targets[i]
		if r := checkText(t.Type, maxTargetType, true, false); r != "" {
			return errAt(fmt.Sprintf("targets[%d].type", i), r)
		}
		if r := checkText(t.ID, maxIDLen, true, false); r != "" {
			return errAt(fmt.Sprintf("targets[%d].id", i), r)
		}
		if r := checkText(t.Name, maxNameLen, false, false); r != "" {
			return errAt(fmt.Sprintf("targets[%d].name", i), r)
		}
	}

	switch n.Outcome {
	case "":
		n.Outcome = Success
	case Success, Failure, Denied, Errored:
	default:
		return errAt("outcome", "must be one of success, failure, denied, error")
	}

	if r := checkText(n.Reason, maxReasonLen, false, true); r != "" {
		return errAt("reason", r)
	}

	if n.Source.IP != "" {
		ip, err := netip.ParseAddr(n.Source.IP)
		if err != nil {
			return errAt("source.ip", "not an IPv4 or IPv6 address")
		}
		if ip.Zone() != "" {
			return errAt("source.ip", "must not have a zone")
		}
		n.Source.IP = ip.String()
	}
	if r := checkText(n.Source.UserAgent, maxUserAgentLen, false, false); r != "" {
		return errAt("source.user_agent", r)
	}

	if r := checkText(n.RequestID, maxIDLen, false, false); r != "" {
		return errAt("request_id", r)
	}
	if n.TraceID != "" && !validTraceID(n.TraceID) {
		return errAt("trace_id", "must be 32 lower-case hex digits, not all zero (W3C trace context)")
	}

	if !n.Time.IsZero() {
		if n.Time.Before(minTime) || n.Time.After(maxTime) {
			return errAt("time", timeOutOfRange)
		}
		if n.Time.After(now.Add(lim.MaxFutureSkew)) {
			return errAt("time", fmt.Sprintf("more than %v in the future", lim.MaxFutureSkew))
		}
		n.Time = n.Time.Round(0).UTC()
	}

	if n.Changes != nil {
		c := *n.Changes
		var err *Error
		if c.Before, err = canonicalValue(c.Before, lim.MaxDepth); err != nil {
			return err.under("changes.before")
		}
		if c.After, err = canonicalValue(c.After, lim.MaxDepth); err != nil {
			return err.under("changes.after")
		}
		n.Changes = &c
		if c.Before == nil && c.After == nil {
			n.Changes = nil
		}
	}

	if len(n.Metadata) > 0 {
		trimmed := bytes.TrimLeft(n.Metadata, " \t\n\r")
		if len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != 'n' {
			return errAt("metadata", "must be a JSON object")
		}
		m, err := canonicalValue(n.Metadata, lim.MaxDepth)
		if err != nil {
			return err.under("metadata")
		}
		switch {
		case string(m) == "null" || string(m) == "{}":
			m = nil
		case len(m) > lim.MaxMetadataSize:
			return errAt("metadata", fmt.Sprintf("%d bytes in canonical form; the limit is %d", len(m), lim.MaxMetadataSize))
		}
		n.Metadata = m
	}
	if n.Metadata != nil && len(n.Metadata) == 0 {
		n.Metadata = nil
	}

	*e = n
	return nil
}

// checkText returns what is wrong with the field value v, or "". v must be at
// most max bytes, present if required, and free of control characters (but
// for tab, newline and carriage return if ws).
func checkText(v string, max int, required, ws bool) string {
	if v == "" {
		if required {
			return "required"
		}
		return ""
	}
	if len(v) > max {
		return fmt.Sprintf("longer than %d bytes", max)
	}
	return textProblem(v, ws)
}

// textProblem returns what is wrong with v as text, or "": it must be valid
// UTF-8 and hold no C0 control characters, except tab, newline and carriage
// return if ws.
func textProblem(v string, ws bool) string {
	if !utf8.ValidString(v) {
		return "invalid UTF-8"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && !(ws && (c == '\t' || c == '\n' || c == '\r')) {
			if ws {
				return "must not contain control characters other than tab, newline and carriage return"
			}
			return "must not contain control characters"
		}
	}
	return ""
}

// validAction reports whether a matches ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$.
func validAction(a string) bool {
	wordStart := true
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case 'a' <= c && c <= 'z':
		case ('0' <= c && c <= '9' || c == '_') && !wordStart:
		case c == '.' && !wordStart:
			wordStart = true
			continue
		default:
			return false
		}
		wordStart = false
	}
	return !wordStart
}

// validTraceID reports whether id is a W3C trace-context trace-id.
func validTraceID(id string) bool {
	if len(id) != 32 {
		return false
	}
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
		zero = zero && c == '0'
	}
	return !zero
}

// canonicalValue checks the JSON value raw under Prepare's rules and returns
// its RFC 8785 canonical form. nil and empty raw stay nil.
func canonicalValue(raw []byte, maxDepth int) ([]byte, *Error) {
	if len(raw) == 0 {
		return nil, nil
	}
	s := scanner{src: string(raw)}
	rr := rawRules{maxDepth: maxDepth, strict: true}
	if err := s.value(0, &rr); err != nil {
		return nil, err
	}
	if !s.atEnd() {
		return nil, errAt("", "invalid JSON: data after the value")
	}
	if !rr.mayChange && !s.spaced {
		// Already canonical, as clients that write compact JSON with sorted
		// keys send it; this skips most of Prepare's work.
		return raw, nil
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		// The scanner accepts nothing that RFC 8785 rejects, so this is a
		// bug; report it as the client's rather than failing the request.
		return nil, errAt("", "cannot be canonicalized")
	}
	return out, nil
}

const inexactNumber = "number cannot be represented exactly; send it as a string"

// numberProblem returns "" if the JSON number lit keeps its value through
// RFC 8785 serialization, which converts it to the nearest IEEE 754 double
// and writes that double's shortest decimal form, or else what is wrong.
func numberProblem(lit string) string {
	var abuf [maxSigDigits]byte
	a := parseDecimal(lit, abuf[:0])
	if a.zero {
		return ""
	}
	// A decimal with at most 15 significant digits in the normal range of a
	// double survives the round trip (DBL_DIG is 15).
	if len(a.digits) <= 15 && !a.truncated && -307 <= a.exp && a.exp <= 307 {
		return ""
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "number out of range; send it as a string"
	}
	if a.truncated {
		return inexactNumber
	}
	var fbuf [32]byte
	var bbuf [maxSigDigits]byte
	b := parseDecimal(string(strconv.AppendFloat(fbuf[:0], f, 'e', -1, 64)), bbuf[:0])
	if b.zero || a.exp != b.exp || string(a.digits) != string(b.digits) {
		return inexactNumber
	}
	return ""
}

// canonicalNumber reports whether lit, a JSON number that numberProblem
// accepts, is written as RFC 8785 writes it. It knows integers and plain
// decimals from 1e-6 to 1e21, and says false for anything else.
func canonicalNumber(lit string) bool {
	if lit == "0" {
		return true
	}
	if strings.ContainsAny(lit, "eE") {
		return false
	}
	digits := strings.TrimPrefix(lit, "-")
	whole, frac, hasFrac := strings.Cut(digits, ".")
	if whole[0] == '0' && !hasFrac || hasFrac && frac[len(frac)-1] == '0' {
		return false // -0, or a trailing zero
	}
	var buf [maxSigDigits]byte
	d := parseDecimal(lit, buf[:0])
	// Up to 15 significant digits the shortest form of the nearest double is
	// the decimal itself.
	return !d.zero && !d.truncated && len(d.digits) <= 15 && -6 <= d.exp && d.exp <= 20
}

// numberNotCanonical returns "" if lit, a JSON number that numberProblem
// accepts, is written as RFC 8785 writes it, or else what to write instead:
// 1.0, -0 and 1E+2 keep their value through canonicalization but not their
// text, and a stored event holds what the client sent or nothing.
func numberNotCanonical(lit string) string {
	if canonicalNumber(lit) {
		return ""
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "number out of range; send it as a string" // numberProblem catches this first
	}
	c, err := jcs.NumberToJSON(f)
	if err != nil || c == lit {
		return ""
	}
	shown := lit
	if len(shown) > 40 {
		shown = shown[:37] + "..."
	}
	return fmt.Sprintf("number %s is not in canonical form (write %s)", shown, c)
}

// maxSigDigits is the most significant digits the shortest form of a double
// has.
const maxSigDigits = 17

// decimal is a JSON number as ±d.ddd × 10^exp, with digits holding its
// significant digits, no leading or trailing zeros.
type decimal struct {
	digits    []byte
	truncated bool // more than maxSigDigits significant digits
	exp       int
	zero      bool
}

// parseDecimal parses lit, a valid JSON number, appending its significant
// digits to dst (which must have room for maxSigDigits).
func parseDecimal(lit string, dst []byte) decimal {
	mant, exp := lit, 0
	if k := strings.IndexAny(lit, "eE"); k >= 0 {
		mant = lit[:k]
		exp = parseExponent(lit[k+1:])
	}
	mant = strings.TrimPrefix(mant, "-")
	whole, frac, _ := strings.Cut(mant, ".")

	d := decimal{digits: dst}
	pos := 0    // index in the digit sequence whole+frac
	first := -1 // pos of the first non-zero digit
	zeros := 0  // zeros since the last non-zero digit, not yet appended
	for _, part := range [2]string{whole, frac} {
		for k := 0; k < len(part); k++ {
			switch c := part[k]; {
			case c == '0' && first < 0:
			case c == '0':
				zeros++
			default:
				if first < 0 {
					first = pos
				}
				for ; zeros > 0; zeros-- {
					d.push('0')
				}
				d.push(c)
			}
			pos++
		}
	}
	if first < 0 {
		return decimal{zero: true}
	}
	d.exp = len(whole) - first - 1 + exp
	return d
}

func (d *decimal) push(c byte) {
	if len(d.digits) < maxSigDigits {
		d.digits = append(d.digits, c)
	} else {
		d.truncated = true
	}
}

// parseExponent parses the digits of an exponent with optional sign,
// stopping short of overflow: any exponent beyond a million is out of range
// for a double either way.
func parseExponent(s string) int {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	e := 0
	for i := 0; i < len(s) && e < 1e6; i++ {
		e = e*10 + int(s[i]-'0')
	}
	if neg {
		return -e
	}
	return e
}
