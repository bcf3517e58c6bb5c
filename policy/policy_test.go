package policy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/policy"
)

// witnessKey is a witness's cosignature/v1 key pair, made as a witness
// makes it.
type witnessKey struct {
	vkey   string // type 0x04
	signer note.Signer
	noteV  string // the same key as an Ed25519 signed-note vkey (type 0x01)
}

func newWitness(t testing.TB, name string) witnessKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	cosigV, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return witnessKey{vkey: cosigV, signer: s, noteV: vkey}
}

// cosign appends w's cosignature lines to a signed checkpoint.
func cosign(t testing.TB, signed []byte, ws ...witnessKey) []byte {
	t.Helper()
	text, _, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		t.Fatalf("not a signed note: %q", signed)
	}
	out := signed
	for _, w := range ws {
		n, err := note.Sign(&note.Note{Text: text + "\n"}, w.signer)
		if err != nil {
			t.Fatal(err)
		}
		_, sig, _ := strings.Cut(string(n), "\n\n")
		out = append(append([]byte(nil), out...), sig...)
	}
	return out
}

// trailCheckpoints returns the verifier key of a real Trail log (a
// trail.DB in a temporary directory) and its signed checkpoints after 2
// and after 3 events.
func trailCheckpoints(t *testing.T) (vkey string, at2, at3 []byte) {
	t.Helper()
	ctx := context.Background()
	db, err := trail.Init(ctx, t.TempDir(), trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.CreateLog(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: fmt.Sprint("u_", i)}, Action: "user.login"}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if at2, err = l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if at3, err = l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(at2, at3) {
		t.Fatal("the checkpoints after 2 and 3 events are the same")
	}
	return l.VerifierKey(), at2, at3
}

func TestParse(t *testing.T) {
	w1, w2, w3 := newWitness(t, "w1.example"), newWitness(t, "w2.example"), newWitness(t, "w3.example")
	_, logKey, err := note.GenerateKey(rand.Reader, "acme")
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`# Trail's log
log %s https://trail.example/v1/tlog

witness w1 %s https://w1.example/   # trailing comment
witness  w2	%s
witness w3 %s http://127.0.0.1:7070/witness
group two 2 w1 w2
group anyof any w3 two
group every all w1 w2 w3
group top all anyof every
quorum top
`, logKey, w1.vkey, w2.vkey, w3.vkey)
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(p.Logs) != 1 || p.Logs[0].VerifierKey != logKey || p.Logs[0].URL != "https://trail.example/v1/tlog" || p.Logs[0].Verifier.Name() != "acme" {
		t.Errorf("Logs = %+v", p.Logs)
	}
	var names, urls []string
	for _, w := range p.Witnesses {
		names = append(names, w.Name)
		urls = append(urls, w.URL)
		if w.Verifier == nil {
			t.Errorf("witness %s has no verifier", w.Name)
		}
	}
	if want := []string{"w1", "w2", "w3"}; !reflect.DeepEqual(names, want) {
		t.Errorf("witness names = %q, want %q", names, want)
	}
	if want := []string{"https://w1.example/", "", "http://127.0.0.1:7070/witness"}; !reflect.DeepEqual(urls, want) {
		t.Errorf("witness URLs = %q, want %q", urls, want)
	}
	if p.Witnesses[0].VerifierKey != w1.vkey {
		t.Errorf("Witnesses[0].VerifierKey = %q, want %q", p.Witnesses[0].VerifierKey, w1.vkey)
	}
	if got, want := p.Quorum(), "2 of (1 of w3, (2 of w1, w2)), (3 of w1, w2, w3)"; got != want {
		t.Errorf("Quorum() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		cosigners []string
		want      bool
	}{
		{nil, false},
		{[]string{"w1", "w2"}, false}, // every needs w3
		{[]string{"w3"}, false},
		{[]string{"w1", "w2", "w3"}, true},
		{[]string{"w3", "w2", "w1", "nobody"}, true},
		{[]string{"w1", "w3", "two", "every"}, false}, // group names are no cosigners
	} {
		if got := p.Satisfied(tc.cosigners); got != tc.want {
			t.Errorf("Satisfied(%q) = %v, want %v", tc.cosigners, got, tc.want)
		}
	}
	// String renders it back; parsed again it is the same policy.
	again, err := policy.Parse([]byte(p.String()))
	if err != nil {
		t.Fatalf("Parse(String()): %v\n%s", err, p.String())
	}
	if again.String() != p.String() {
		t.Errorf("String() does not round-trip:\n%s\nthen\n%s", p.String(), again.String())
	}
	if !strings.Contains(p.String(), "group anyof any w3 two\n") || !strings.Contains(p.String(), "quorum top\n") {
		t.Errorf("String() =\n%s", p.String())
	}
}

func TestParseQuorumNone(t *testing.T) {
	w1 := newWitness(t, "w1.example")
	p, err := policy.Parse([]byte("witness w1 " + w1.vkey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.None() || p.Quorum() != "none" || !p.Satisfied(nil) {
		t.Errorf("quorum none: None() = %v, Quorum() = %q, Satisfied(nil) = %v", p.None(), p.Quorum(), p.Satisfied(nil))
	}
	if r := p.Check([]byte("not a note")); !r.Met || len(r.Cosigners) != 0 || !reflect.DeepEqual(r.Missing, []string{"w1"}) {
		t.Errorf("Check with quorum none = %+v, want met with w1 missing", r)
	}
	if got := p.String(); got != "witness w1 "+w1.vkey+"\nquorum none\n" {
		t.Errorf("String() = %q", got)
	}
	// A single witness as the quorum.
	p, err = policy.Parse([]byte("witness w1 " + w1.vkey + "\nquorum w1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.None() || p.Quorum() != "w1" || p.Satisfied(nil) || !p.Satisfied([]string{"w1"}) {
		t.Errorf("quorum w1: None() = %v, Quorum() = %q, Satisfied(nil) = %v", p.None(), p.Quorum(), p.Satisfied(nil))
	}
}

// A Policy not made by Parse has no quorum that anything meets.
func TestZeroPolicyFailsClosed(t *testing.T) {
	var p policy.Policy
	if p.None() || p.Satisfied(nil) || p.Check([]byte("a\n\n")).Met {
		t.Errorf("the zero Policy: None() = %v, Satisfied(nil) = %v; want a quorum nothing meets", p.None(), p.Satisfied(nil))
	}
}

func TestParseErrors(t *testing.T) {
	w1, w2 := newWitness(t, "w1.example"), newWitness(t, "w2.example")
	_, logKey, err := note.GenerateKey(rand.Reader, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// A vkey whose hash is not its key's.
	badHash := "w1.example+00000000+" + strings.SplitN(w1.vkey, "+", 3)[2]
	// A type 0x04 key of the wrong length.
	short := "w1.example+12345678+" + base64.StdEncoding.EncodeToString([]byte{4, 1, 2, 3})
	head := "witness w1 " + w1.vkey + "\nwitness w2 " + w2.vkey + "\n"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown keyword", head + "witnes w3 " + w1.vkey + "\nquorum w1\n", `policy line 3: unknown keyword "witnes"`},
		{"bad vkey", head + "witness w3 nonsense\nquorum w1\n", `policy line 3: witness w3 key "nonsense": not a signed-note verifier key`},
		{"bad base64", head + "witness w3 w3+12345678+!!!\nquorum w1\n", `policy line 3: witness w3 key`},
		{"short key", "witness w1 " + short + "\nquorum w1\n", `policy line 1: witness w1 key`},
		{"bad key hash", "# c\nwitness w1 " + badHash + "\nquorum w1\n", `policy line 2: witness w1 key "` + badHash + `": its key hash is not the hash of its name and key`},
		{"signed-note key for a witness", "witness w1 " + w1.noteV + "\nquorum w1\n", `policy line 1: witness w1 key "` + w1.noteV + `": an Ed25519 signed-note key (type 0x01), not an Ed25519 cosignature/v1 key (type 0x04)`},
		{"log key for a witness", "witness w1 " + logKey + "\nquorum w1\n", `type 0x01`},
		{"bad log key", "log acme+1+AQ==\n" + head + "quorum w1\n", `policy line 1: log key "acme+1+AQ=="`},
		{"log without key", "log\nquorum none\n", `policy line 1: want ` + "`log VKEY [URL]`"},
		{"duplicate witness", head + "witness w1 " + w1.vkey + "\nquorum w1\n", `policy line 3: witness name "w1" is already defined`},
		{"group named as a witness", head + "group w2 any w1\nquorum w2\n", `policy line 3: group name "w2" is already defined`},
		{"same key twice", head + "witness w3 " + w1.vkey + "\nquorum w1\n", `policy line 3: witness w3 has the same key as witness w1`},
		{"keyword as a name", "witness any " + w1.vkey + "\nquorum none\n", `policy line 1: witness name "any" is a keyword`},
		{"unknown member", head + "group g 1 w1 w9\nquorum g\n", `policy line 3: group g: unknown member "w9"`},
		{"member defined later", "witness w1 " + w1.vkey + "\ngroup g 1 w1 w2\nwitness w2 " + w2.vkey + "\nquorum g\n", `policy line 2: group g: unknown member "w2"`},
		{"member twice", head + "group g 1 w1 w1\nquorum g\n", `policy line 3: group g: member "w1" listed twice`},
		{"threshold over members", head + "\n\ngroup g 3 w1 w2\nquorum g\n", `policy line 5: group g: threshold 3 is more than its 2 members`},
		{"threshold zero", head + "group g 0 w1 w2\nquorum g\n", `policy line 3: group g: threshold "0" is not a number of at least 1, any or all`},
		{"threshold word", head + "group g most w1 w2\nquorum g\n", `policy line 3: group g: threshold "most"`},
		{"group without members", head + "group g any\nquorum g\n", `policy line 3: want ` + "`group NAME K|any|all MEMBER…`"},
		{"missing quorum", head + "group g any w1 w2\n", `policy: no quorum line`},
		{"empty", "", `policy: no quorum line`},
		{"unknown quorum", head + "quorum g\n", `policy line 3: quorum "g" is not a witness or group of the policy`},
		{"two quorums", head + "quorum w1\nquorum w2\n", `policy line 4: second quorum (the first is on line 3)`},
		{"quorum with two names", head + "quorum w1 w2\n", `policy line 3: want ` + "`quorum NAME`"},
		{"bad URL", "witness w1 " + w1.vkey + " ftp://w1.example/\nquorum w1\n", `policy line 1: witness w1 URL "ftp://w1.example/": not an http or https URL`},
		{"URL without host", "witness w1 " + w1.vkey + " https:///x\nquorum w1\n", `policy line 1: witness w1 URL "https:///x": no host`},
		{"unparsable URL", "witness w1 " + w1.vkey + " http://[::1\nquorum w1\n", `policy line 1: witness w1 URL "http://[::1": not a URL`},
		{"bad log URL", "log " + logKey + " w1.example\nquorum none\n", `policy line 1: log URL "w1.example": not an http or https URL`},
		{"extra field", "witness w1 " + w1.vkey + " https://w1.example/ more\nquorum w1\n", `policy line 1: want ` + "`witness NAME VKEY [URL]`"},
		{"not UTF-8", "quorum none\n\xff\n", `policy: not UTF-8 text`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tc.text))
			if err == nil {
				t.Fatalf("Parse(%q) = %v, nil; want error %q", tc.text, p, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v; want an error containing %q", tc.text, err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	logKey, at2, at3 := trailCheckpoints(t)
	w1, w2, w3 := newWitness(t, "w1.example"), newWitness(t, "w2.example"), newWitness(t, "w3.example")
	stranger := newWitness(t, "w9.example")
	p, err := policy.Parse(fmt.Appendf(nil, `log %s
witness w1 %s https://w1.example
witness w2 %s https://w2.example
witness w3 %s https://w3.example
group g 2 w1 w2 w3
quorum g
`, logKey, w1.vkey, w2.vkey, w3.vkey))
	if err != nil {
		t.Fatal(err)
	}
	// Check does not stand in for the log's signature, but the cosigned
	// note must still open with the log's key.
	logV, err := note.NewVerifier(logKey)
	if err != nil {
		t.Fatal(err)
	}

	// A forged cosignature: w2's line with a byte of its signature changed.
	good2 := cosign(t, at3, w2)
	forged := []byte(strings.Replace(string(good2), lastSig(t, good2), flipByte(t, lastSig(t, good2)), 1))
	// w2's valid cosignature of the checkpoint at size 2, on the size-3 one.
	otherCheckpoint := append(append([]byte(nil), at3...), lastLine(cosign(t, at2, w2))...)

	// 1 + 99 + 2 signature lines: not a note, as x/mod's note.Open says.
	many := append(append([]byte(nil), at3...), strings.Repeat(lastLine(cosign(t, at3, stranger)), 99)...)

	before := time.Now().Add(-time.Second).Truncate(time.Second)
	for _, tc := range []struct {
		name      string
		note      []byte
		met       bool
		cosigners []string
		missing   []string
	}{
		{"quorum met", cosign(t, at3, w1, w2), true, []string{"w1", "w2"}, []string{"w3"}},
		{"all three", cosign(t, at3, w3, w1, w2), true, []string{"w1", "w2", "w3"}, nil},
		{"short by one", cosign(t, at3, w3), false, []string{"w3"}, []string{"w1", "w2"}},
		{"self-signed only", at3, false, nil, []string{"w1", "w2", "w3"}},
		{"forged cosignature ignored", cosign(t, forged, w1), false, []string{"w1"}, []string{"w2", "w3"}},
		{"stranger ignored", cosign(t, at3, w1, stranger), false, []string{"w1"}, []string{"w2", "w3"}},
		{"other checkpoint's cosignature ignored", cosign(t, otherCheckpoint, w1), false, []string{"w1"}, []string{"w2", "w3"}},
		{"same witness twice counts once", cosign(t, at3, w1, w1), false, []string{"w1"}, []string{"w2", "w3"}},
		{"not a note", []byte("hello"), false, nil, []string{"w1", "w2", "w3"}},
		{"over 100 signatures", cosign(t, many, w1, w2), false, nil, []string{"w1", "w2", "w3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := note.Open(tc.note, note.VerifierList(logV)); err != nil && tc.name != "not a note" && tc.name != "over 100 signatures" {
				t.Fatalf("the log's note does not open with its key: %v", err)
			}
			r := p.Check(tc.note)
			if r.Met != tc.met || !reflect.DeepEqual(r.Cosigners, tc.cosigners) || !reflect.DeepEqual(r.Missing, tc.missing) {
				t.Errorf("Check = met %v, cosigners %q, missing %q; want met %v, cosigners %q, missing %q",
					r.Met, r.Cosigners, r.Missing, tc.met, tc.cosigners, tc.missing)
			}
			if r.Quorum != "2 of w1, w2, w3" {
				t.Errorf("Check().Quorum = %q, want %q", r.Quorum, "2 of w1, w2, w3")
			}
			if len(r.Cosignatures) != len(r.Cosigners) {
				t.Fatalf("Check().Cosignatures = %v for cosigners %q", r.Cosignatures, r.Cosigners)
			}
			for i, c := range r.Cosignatures {
				if c.Witness != r.Cosigners[i] || c.Time.Before(before) || c.Time.After(time.Now()) {
					t.Errorf("Cosignatures[%d] = %+v, want %s signed at about now", i, c, r.Cosigners[i])
				}
			}
		})
	}
	// The witnesses' cosignatures verify with formats' own verifiers too.
	n, err := note.Open(cosign(t, at3, w1, w2), note.VerifierList(p.Witnesses[0].Verifier, p.Witnesses[1].Verifier))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("note.Open with the policy's verifiers = %v, %v", n, err)
	}
	if s := p.Check(cosign(t, at3, w3)).String(); s != "quorum 2 of w1, w2, w3: not met (cosigned by w3; missing w1, w2)" {
		t.Errorf("Result.String() = %q", s)
	}
}

func lastLine(b []byte) string {
	s := strings.TrimSuffix(string(b), "\n")
	return s[strings.LastIndexByte(s, '\n')+1:] + "\n"
}

func lastSig(t *testing.T, b []byte) string {
	f := strings.Fields(lastLine(b))
	if len(f) != 3 {
		t.Fatalf("last line %q is not a signature", lastLine(b))
	}
	return f[2]
}

func flipByte(t *testing.T, b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}

func FuzzParse(f *testing.F) {
	w := newWitness(f, "w1.example")
	f.Add([]byte("witness w1 " + w.vkey + " https://w1.example\ngroup g any w1\nquorum g\n"))
	f.Add([]byte("log x\nquorum none\n# c\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := policy.Parse(text)
		if err != nil {
			return
		}
		again, err := policy.Parse([]byte(p.String()))
		if err != nil || again.String() != p.String() {
			t.Fatalf("String() of a parsed policy does not parse back: %v\n%s", err, p.String())
		}
		p.Check(text)
		p.Satisfied([]string{"w1"})
	})
}

func FuzzCheck(f *testing.F) {
	w1 := newWitness(f, "w1.example")
	p, err := policy.Parse([]byte("witness w1 " + w1.vkey + "\nquorum w1\n"))
	if err != nil {
		f.Fatal(err)
	}
	cp := []byte("acme\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— acme AAAA\n")
	f.Add(cosign(f, cp, w1))
	f.Add([]byte("a\n\n— \n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r := p.Check(msg)
		if r.Met != (len(r.Cosigners) == 1) || len(r.Cosigners)+len(r.Missing) != 1 {
			t.Fatalf("Check = %+v", r)
		}
	})
}

// Groups that share members nest exponentially many paths in a few lines:
// checking and describing such a policy stays linear.
func TestSharedGroupsStayLinear(t *testing.T) {
	w1, w2 := newWitness(t, "w1.example"), newWitness(t, "w2.example")
	text := fmt.Sprintf("witness w1 %s\nwitness w2 %s\ngroup a0 any w1 w2\ngroup b0 all w1 w2\n", w1.vkey, w2.vkey)
	for i := 1; i <= 60; i++ { // 2^60 paths from a60 to w1
		text += fmt.Sprintf("group a%d all a%d b%d\ngroup b%d any a%d b%d\n", i, i-1, i-1, i, i-1, i-1)
	}
	p, err := policy.Parse([]byte(text + "quorum a60\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, at3 := trailCheckpoints(t)
	if r := p.Check(cosign(t, at3, w1, w2)); !r.Met || len(r.Quorum) > 10000 || !strings.HasPrefix(r.Quorum, "2 of (2 of (2 of") {
		t.Errorf("Check with both = met %v, quorum %.200q (%d bytes)", r.Met, r.Quorum, len(r.Quorum))
	}
	if p.Check(cosign(t, at3, w1)).Met {
		t.Error("Check with w1 only = met; b0 needs both")
	}
}
