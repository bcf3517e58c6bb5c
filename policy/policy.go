// Package policy reads witness policies and checks cosigned checkpoints
// against them.
//
// A policy is written in the C2SP tlog-policy syntax
// (https://c2sp.org/tlog-policy, as Sigsum's policy files):
//
//	# the log
//	log acme+1a2b3c4d+AWx… https://trail.example.com/v1/tlog
//	# its witnesses: a name, an Ed25519 cosignature/v1 verifier key, a tlog-witness URL
//	witness w1 w1.example+5e6f7a8b+BKz… https://w1.example/
//	witness w2 w2.example+9c0d1e2f+BPq… https://w2.example/
//	group both all w1 w2
//	quorum both
//
// A cosigned checkpoint is the log's signed checkpoint note
// (https://c2sp.org/tlog-checkpoint) with the witnesses' cosignature lines
// appended (https://c2sp.org/tlog-cosignature). [Policy.Check] verifies
// those cosignatures and says whether they meet the quorum; it does not
// check the log's own signature, which the caller checks against the key it
// pinned.
//
// The package imports neither Trail's server nor its stores, so that
// clients can use it.
package policy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Policy is a parsed witness policy; use [Parse]. Its zero value has no
// quorum that anything meets.
type Policy struct {
	Logs      []Log     // the `log` lines, in file order
	Witnesses []Witness // the `witness` lines, in file order

	groups []group // the `group` lines, in file order
	quorum *node   // nil for `quorum none`, and in the zero value
	none   bool    // `quorum none`: no witness needed
	byName map[string]*node
}

// Log is a log the policy is for: a `log VKEY [URL]` line.
type Log struct {
	VerifierKey string        // the log's signed-note verifier key
	URL         string        // where the log is served ("" if the line has none)
	Verifier    note.Verifier // VerifierKey's verifier
}

// Witness is a `witness NAME VKEY [URL]` line.
type Witness struct {
	Name        string // the policy's name for it
	VerifierKey string // its C2SP signed-note verifier key, Ed25519 cosignature/v1 (type 0x04)
	// URL is its tlog-witness submission prefix ("" if the line has none):
	// the add-checkpoint endpoint is URL + "/add-checkpoint".
	URL      string
	Verifier note.Verifier // VerifierKey's cosignature/v1 verifier
}

// group is a `group NAME K MEMBER…` line.
type group struct {
	name      string
	threshold string // as written: a number, "any" or "all"
	members   []string
}

// node is a witness or a group of the quorum tree.
type node struct {
	name    string
	witness int     // index in Witnesses, or -1 for a group
	k       int     // for a group: how many members must be satisfied
	members []*node // for a group
}

// Result is what [Policy.Check] found in a cosigned checkpoint.
type Result struct {
	Met       bool     // the quorum is met
	Cosigners []string // names of policy witnesses with a valid cosignature, sorted
	Missing   []string // names of policy witnesses without one, sorted
	Quorum    string   // the quorum described for people, e.g. "2 of w1, w2"
	// Cosignatures are the valid cosignatures, one per cosigner, in
	// Cosigners' order.
	Cosignatures []Cosignature
}

// Cosignature is a witness's valid cosignature of a checkpoint.
type Cosignature struct {
	Witness string    // the policy's name for the witness
	Time    time.Time // when the witness says it cosigned (whole seconds, UTC)
}

const (
	algEd25519      = 0x01
	algCosigV1      = 0x04
	maxPolicyLength = 1 << 20
)

var keywords = map[string]bool{"log": true, "witness": true, "group": true, "quorum": true, "any": true, "all": true, "none": true}

// Parse reads a policy in C2SP tlog-policy syntax: `log VKEY [URL]`,
// `witness NAME VKEY [URL]`, `group NAME K|any|all MEMBER…`,
// `quorum NAME|none`, and `#` comments. A group's members are witnesses and
// groups defined on earlier lines; `quorum` names one of them, or none for
// a policy that needs no witness, and appears once. Witness keys must be
// Ed25519 cosignature/v1 keys (type 0x04). Errors name the line: "policy
// line 3: …".
func Parse(text []byte) (*Policy, error) {
	if len(text) > maxPolicyLength {
		return nil, fmt.Errorf("policy: longer than %d bytes", maxPolicyLength)
	}
	if !utf8.Valid(text) {
		return nil, errors.New("policy: not UTF-8 text")
	}
	p := &Policy{byName: map[string]*node{}}
	quorumLine, quorumName := 0, ""
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, maxPolicyLength+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		lineErr := func(format string, args ...any) error {
			return fmt.Errorf("policy line %d: "+format, append([]any{n}, args...)...)
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return nil, lineErr("want `log VKEY [URL]`")
			}
			v, err := fnote.NewVerifier(f[1])
			if err != nil {
				return nil, lineErr("log key %s: %v", shownKey(f[1]), err)
			}
			l := Log{VerifierKey: f[1], Verifier: v}
			if len(f) == 3 {
				if err := checkURL(f[2]); err != nil {
					return nil, lineErr("log URL %q: %v", f[2], err)
				}
				l.URL = f[2]
			}
			p.Logs = append(p.Logs, l)
		case "witness":
			if len(f) < 3 || len(f) > 4 {
				return nil, lineErr("want `witness NAME VKEY [URL]`")
			}
			if err := p.checkNewName(f[1]); err != nil {
				return nil, lineErr("witness %v", err)
			}
			v, err := cosignatureVerifier(f[2])
			if err != nil {
				return nil, lineErr("witness %s key %s: %v", f[1], shownKey(f[2]), err)
			}
			w := Witness{Name: f[1], VerifierKey: f[2], Verifier: v}
			if len(f) == 4 {
				if err := checkURL(f[3]); err != nil {
					return nil, lineErr("witness %s URL %q: %v", f[1], f[3], err)
				}
				w.URL = f[3]
			}
			for _, o := range p.Witnesses {
				if o.Verifier.Name() == v.Name() && o.Verifier.KeyHash() == v.KeyHash() {
					return nil, lineErr("witness %s has the same key as witness %s", w.Name, o.Name)
				}
			}
			p.byName[w.Name] = &node{name: w.Name, witness: len(p.Witnesses)}
			p.Witnesses = append(p.Witnesses, w)
		case "group":
			if len(f) < 4 {
				return nil, lineErr("want `group NAME K|any|all MEMBER…` with at least one member")
			}
			if err := p.checkNewName(f[1]); err != nil {
				return nil, lineErr("group %v", err)
			}
			g := group{name: f[1], threshold: f[2], members: f[3:]}
			nd := &node{name: g.name, witness: -1}
			for _, m := range g.members {
				c, ok := p.byName[m]
				if !ok {
					return nil, lineErr("group %s: unknown member %q (define witnesses and groups before the groups that use them)", g.name, m)
				}
				if slices.Contains(nd.members, c) {
					return nil, lineErr("group %s: member %q listed twice", g.name, m)
				}
				nd.members = append(nd.members, c)
			}
			switch g.threshold {
			case "any":
				nd.k = 1
			case "all":
				nd.k = len(nd.members)
			default:
				k, err := strconv.Atoi(g.threshold)
				if err != nil || k < 1 {
					return nil, lineErr("group %s: threshold %q is not a number of at least 1, any or all", g.name, g.threshold)
				}
				if k > len(nd.members) {
					return nil, lineErr("group %s: threshold %d is more than its %d members", g.name, k, len(nd.members))
				}
				nd.k = k
			}
			p.byName[g.name] = nd
			p.groups = append(p.groups, g)
		case "quorum":
			if len(f) != 2 {
				return nil, lineErr("want `quorum NAME` or `quorum none`")
			}
			if quorumLine != 0 {
				return nil, lineErr("second quorum (the first is on line %d)", quorumLine)
			}
			quorumLine, quorumName = n, f[1]
		default:
			if len(f[0]) > 16 {
				// Not a word: perhaps a secret in the wrong file, which
				// an error must not show.
				return nil, lineErr("does not start with a keyword (want log, witness, group or quorum): is this a policy file?")
			}
			return nil, lineErr("unknown keyword %q (want log, witness, group or quorum)", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	switch {
	case quorumLine == 0:
		return nil, errors.New("policy: no quorum line (`quorum NAME`, or `quorum none` for no witness)")
	case quorumName == "none":
		p.none = true
	default:
		q, ok := p.byName[quorumName]
		if !ok {
			return nil, fmt.Errorf("policy line %d: quorum %q is not a witness or group of the policy", quorumLine, quorumName)
		}
		p.quorum = q
	}
	return p, nil
}

func (p *Policy) checkNewName(name string) error {
	if keywords[name] {
		return fmt.Errorf("name %q is a keyword", name)
	}
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("name %q has a control character", name)
	}
	if _, ok := p.byName[name]; ok {
		return fmt.Errorf("name %q is already defined", name)
	}
	return nil
}

// cosignatureVerifier returns the verifier of an Ed25519 cosignature/v1
// vkey, refusing other key types (an Ed25519 signed-note key, type 0x01,
// signs notes, not cosignatures) and a key hash that is not the key's.
func cosignatureVerifier(vkey string) (note.Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || len(hash16) != 8 || err != nil || len(key) == 0 {
		return nil, errors.New("not a signed-note verifier key (NAME+HASH+BASE64)")
	}
	switch key[0] {
	case algCosigV1:
	case algEd25519:
		return nil, errors.New("an Ed25519 signed-note key (type 0x01), not an Ed25519 cosignature/v1 key (type 0x04)")
	default:
		return nil, fmt.Errorf("key type 0x%02x, not an Ed25519 cosignature/v1 key (type 0x04)", key[0])
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, err
	}
	h, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || uint32(h) != v.KeyHash() {
		return nil, errors.New("its key hash is not the hash of its name and key")
	}
	if v.Name() != name {
		return nil, errors.New("malformed name")
	}
	return v, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("not an http or https URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("a prefix URL takes no query or fragment")
	}
	return nil
}

// None reports whether the policy needs no witness (`quorum none`).
func (p *Policy) None() bool { return p.none }

// Witness returns the policy's witness named name.
func (p *Policy) Witness(name string) (Witness, bool) {
	for _, w := range p.Witnesses {
		if w.Name == name {
			return w, true
		}
	}
	return Witness{}, false
}

// Check verifies the cosignatures a signed checkpoint note carries against
// the policy's witnesses and evaluates the quorum. Bad signatures, and
// signatures by keys the policy does not name, are ignored, as C2SP
// signed-note says; so is anything that is not a signed note, which then
// has no cosigner. Check does not verify the log's own signature.
func (p *Policy) Check(signedNote []byte) Result {
	r := Result{Quorum: p.Quorum()}
	times := map[string]time.Time{}
	if text, sigs, ok := splitNote(signedNote); ok {
		for _, s := range sigs {
			for _, w := range p.Witnesses {
				if _, done := times[w.Name]; done {
					continue
				}
				if w.Verifier.Name() != s.name || w.Verifier.KeyHash() != s.hash || !w.Verifier.Verify(text, s.sig) {
					continue
				}
				t, err := fnote.CoSigV1Timestamp(note.Signature{Base64: s.b64})
				if err != nil {
					continue
				}
				times[w.Name] = t.UTC()
			}
		}
	}
	for _, w := range p.Witnesses {
		if _, ok := times[w.Name]; ok {
			r.Cosigners = append(r.Cosigners, w.Name)
		} else {
			r.Missing = append(r.Missing, w.Name)
		}
	}
	slices.Sort(r.Cosigners)
	slices.Sort(r.Missing)
	for _, name := range r.Cosigners {
		r.Cosignatures = append(r.Cosignatures, Cosignature{Witness: name, Time: times[name]})
	}
	r.Met = p.Satisfied(r.Cosigners)
	return r
}

// Satisfied reports whether the witnesses named meet the quorum. Names that
// are not the policy's witnesses count for nothing.
func (p *Policy) Satisfied(cosigners []string) bool {
	switch {
	case p.none:
		return true
	case p.quorum == nil: // not parsed: fail closed
		return false
	}
	return satisfied(p.quorum, cosigners, map[*node]bool{})
}

// satisfied evaluates n, each group once: groups may share members, and a
// policy of a few dozen lines can nest exponentially many paths.
func satisfied(n *node, cosigners []string, memo map[*node]bool) bool {
	if n.witness >= 0 {
		return slices.Contains(cosigners, n.name)
	}
	if v, ok := memo[n]; ok {
		return v
	}
	got := 0
	for _, m := range n.members {
		if satisfied(m, cosigners, memo) {
			got++
		}
	}
	memo[n] = got >= n.k
	return memo[n]
}

// describeBudget is how many groups a quorum's description spells out;
// past it, groups are named rather than expanded.
const describeBudget = 100

// Quorum describes the quorum for people, e.g. "2 of w1, w2", or "none".
// Nested groups are spelled out in parentheses, "2 of w1, (1 of w2, w3)",
// up to 100 groups; the rest go by their names.
func (p *Policy) Quorum() string {
	budget := describeBudget
	return p.describe(p.quorum, true, &budget)
}

func (p *Policy) describe(n *node, top bool, budget *int) string {
	switch {
	case n == nil && p.none:
		return "none"
	case n == nil:
		return "no quorum (not a parsed policy)"
	case n.witness >= 0:
		return n.name
	}
	if *budget--; *budget < 0 && !top {
		return n.name
	}
	names := make([]string, len(n.members))
	for i, m := range n.members {
		names[i] = p.describe(m, false, budget)
	}
	s := fmt.Sprintf("%d of %s", n.k, strings.Join(names, ", "))
	if !top {
		s = "(" + s + ")"
	}
	return s
}

// String renders the policy back in tlog-policy syntax: its logs, witnesses,
// groups and quorum, one per line, without comments.
func (p *Policy) String() string {
	var b strings.Builder
	for _, l := range p.Logs {
		b.WriteString("log " + l.VerifierKey)
		if l.URL != "" {
			b.WriteString(" " + l.URL)
		}
		b.WriteString("\n")
	}
	for _, w := range p.Witnesses {
		b.WriteString("witness " + w.Name + " " + w.VerifierKey)
		if w.URL != "" {
			b.WriteString(" " + w.URL)
		}
		b.WriteString("\n")
	}
	for _, g := range p.groups {
		b.WriteString("group " + g.name + " " + g.threshold + " " + strings.Join(g.members, " ") + "\n")
	}
	switch {
	case p.none:
		b.WriteString("quorum none\n")
	case p.quorum != nil:
		b.WriteString("quorum " + p.quorum.name + "\n")
	}
	return b.String()
}

// String describes the result for people: "2 of w1, w2: met (cosigned by
// w1, w2)" or "2 of w1, w2: not met (cosigned by w1; missing w2)".
func (r Result) String() string {
	state := "met"
	if !r.Met {
		state = "not met"
	}
	cos := "none"
	if len(r.Cosigners) > 0 {
		cos = strings.Join(r.Cosigners, ", ")
	}
	s := fmt.Sprintf("quorum %s: %s (cosigned by %s", r.Quorum, state, cos)
	if len(r.Missing) > 0 {
		s += "; missing " + strings.Join(r.Missing, ", ")
	}
	return s + ")"
}

type sigLine struct {
	name string
	hash uint32
	sig  []byte // after the key hash
	b64  string // the whole signature, key hash first
}

// splitNote splits a signed note into its text (ending in a newline) and
// its well-formed signature lines, as x/mod's note.Open reads them; it
// reports false for anything that is not a signed note, such as one of
// more than 100 signatures.
func splitNote(msg []byte) (text []byte, sigs []sigLine, ok bool) {
	if !utf8.Valid(msg) {
		return nil, nil, false
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return nil, nil, false
	}
	text, rest := msg[:split+1], msg[split+2:]
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return nil, nil, false
	}
	lines := strings.Split(string(rest[:len(rest)-1]), "\n")
	if len(lines) > 100 { // as x/mod's note.Open: a malformed note
		return nil, nil, false
	}
	for _, line := range lines {
		body, found := strings.CutPrefix(line, "— ")
		if !found {
			return nil, nil, false
		}
		name, b64, found := strings.Cut(body, " ")
		if !found || name == "" || b64 == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			continue
		}
		sigs = append(sigs, sigLine{
			name: name,
			hash: uint32(raw[0])<<24 | uint32(raw[1])<<16 | uint32(raw[2])<<8 | uint32(raw[3]),
			sig:  raw[4:],
			b64:  b64,
		})
	}
	return text, sigs, true
}

// shownKey is a key of a policy line as an error shows it: quoted, unless
// it is a signing key, a secret given by mistake.
func shownKey(k string) string {
	if strings.HasPrefix(k, "PRIVATE+KEY+") {
		return "(a signing key, which is secret: not shown; give its verifier key)"
	}
	return strconv.Quote(k)
}
