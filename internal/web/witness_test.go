package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/policy"
)

// testWitness is a witness's cosignature/v1 key pair, made as
// transparency-dev/formats makes one.
type testWitness struct {
	vkey   string      // type 0x04
	noteV  string      // the same key as a signed-note Ed25519 key (type 0x01)
	signer note.Signer // cosignature/v1
	plain  note.Signer // the same key signing plain Ed25519 notes
}

func newTestWitness(t *testing.T, name string) testWitness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	cosig, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return testWitness{vkey: cosig, noteV: vkey, signer: s, plain: plain}
}

// cosignNote appends the witnesses' cosignature/v1 lines to a signed note.
func cosignNote(t *testing.T, signed []byte, ws ...testWitness) []byte {
	t.Helper()
	var signers []note.Signer
	for _, w := range ws {
		signers = append(signers, w.signer)
	}
	return signNote(t, signed, signers...)
}

// signNote appends signers' signature lines to a signed note.
func signNote(t *testing.T, signed []byte, signers ...note.Signer) []byte {
	t.Helper()
	text, _, _ := strings.Cut(string(signed), "\n\n")
	out := append([]byte(nil), signed...)
	for _, w := range signers {
		n, err := note.Sign(&note.Note{Text: text + "\n"}, w)
		if err != nil {
			t.Fatal(err)
		}
		_, sig, _ := strings.Cut(string(n), "\n\n")
		out = append(out, sig...)
	}
	return out
}

// witnessesResult is what verifyWitnesses resolves to.
type witnessesResult struct {
	OK        bool   `json:"ok"`
	Met       bool   `json:"met"`
	Quorum    string `json:"quorum"`
	Cosigners []struct {
		Name string `json:"name"`
		Time string `json:"time"`
	} `json:"cosigners"`
	Missing []string `json:"missing"`
	Total   int      `json:"total"`
	Reason  string   `json:"reason"`
}

type witnessesInput struct {
	Checkpoint any `json:"checkpoint"`
	Policy     any `json:"policy"`
}

func verifyWitnessesInBrowser(t *testing.T, ctx context.Context, ins []witnessesInput) []witnessesResult {
	t.Helper()
	js, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	got := evalInVerifyPage[[]witnessesResult](t, ctx, fmt.Sprintf(`Promise.all(%s.map((in_) => window.trail.verifyWitnesses(in_)))`, js))
	if len(got) != len(ins) {
		t.Fatalf("verifyWitnesses gave %d results for %d inputs", len(got), len(ins))
	}
	return got
}

// The browser's check of cosignatures (verify.js, WebCrypto Ed25519) finds
// exactly what the Go policy package finds, for cosignatures made with
// transparency-dev/formats over a real Trail checkpoint: the quorum met,
// short by one, nested groups, quorum none, and cosignatures that must not
// count (forged, by a key the policy does not name, of another checkpoint,
// by the witness's key used as a plain signed-note key).
func TestVerifyWitnessesMatchesGo(t *testing.T) {
	db := newVerifyDB(t)
	vl := newVerifyLog(t, db, "acme", []event.Event{verifyPlainEvent(0), verifyPlainEvent(1)}, []event.Event{verifyPlainEvent(2)})
	at2, at3 := vl.checkpoints[2], vl.checkpoints[3]
	if at2 == nil || at3 == nil {
		t.Fatalf("checkpoints %v", vl.checkpoints)
	}
	w1, w2, w3 := newTestWitness(t, "w1.example"), newTestWitness(t, "w2.example/x"), newTestWitness(t, "w3.example")
	stranger := newTestWitness(t, "w9.example")

	flat := fmt.Sprintf("log %s\nwitness w1 %s https://w1.example/\nwitness w2 %s\ngroup both all w1 w2\nquorum both\n", vl.log.VerifierKey(), w1.vkey, w2.vkey)
	nested := fmt.Sprintf("# nested\nwitness w1 %s\nwitness w2 %s\nwitness w3 %s\ngroup a any w1 w2\ngroup top 2 a w3\nquorum top\n", w1.vkey, w2.vkey, w3.vkey)
	none := fmt.Sprintf("witness w1 %s\nquorum none\n", w1.vkey)
	single := fmt.Sprintf("witness w3 %s\nquorum w3\n", w3.vkey)

	good := cosignNote(t, at3, w2)
	sig := strings.Fields(lastLineOf(string(good)))[2]
	raw, _ := base64.StdEncoding.DecodeString(sig)
	raw[len(raw)-1] ^= 0x40
	forged := strings.Replace(string(good), sig, base64.StdEncoding.EncodeToString(raw), 1)
	// The witness's timestamp changed: the signature no longer covers it.
	raw, _ = base64.StdEncoding.DecodeString(sig)
	raw[11] ^= 1
	retimed := strings.Replace(string(good), sig, base64.StdEncoding.EncodeToString(raw), 1)
	otherCP := string(at3) + lastLineOf(string(cosignNote(t, at2, w1)))
	// w1's key signing as a plain Ed25519 note key: not a cosignature.
	plain := string(signNote(t, at3, w1.plain, w2.signer))

	shared := fmt.Sprintf("witness w1 %s\nwitness w2 %s\ngroup a0 any w1 w2\ngroup b0 all w1 w2\n", w1.vkey, w2.vkey)
	for i := 1; i <= 60; i++ { // 2^60 paths from a60 to w1
		shared += fmt.Sprintf("group a%d all a%d b%d\ngroup b%d any a%d b%d\n", i, i-1, i-1, i, i-1, i-1)
	}
	shared += "quorum a60\n"

	cases := []struct {
		name, note, policy string
	}{
		{"shared groups met", string(cosignNote(t, at3, w1, w2)), shared},
		{"shared groups short", string(cosignNote(t, at3, w1)), shared},
		{"flat met", string(cosignNote(t, at3, w1, w2)), flat},
		{"flat short by one", string(cosignNote(t, at3, w2)), flat},
		{"flat none cosigned", string(at3), flat},
		{"forged ignored", string(cosignNote(t, []byte(forged), w1)), flat},
		{"retimed ignored", retimed, flat},
		{"stranger ignored", string(cosignNote(t, at3, stranger, w1)), flat},
		{"other checkpoint ignored", otherCP, flat},
		{"plain signature ignored", plain, flat},
		{"twice counts once", string(cosignNote(t, at3, w1, w1)), flat},
		{"nested met", string(cosignNote(t, at3, w3, w2)), nested},
		{"nested group only", string(cosignNote(t, at3, w1, w2)), nested},
		{"nested w3 only", string(cosignNote(t, at3, w3)), nested},
		{"quorum none", string(at3), none},
		{"single met", string(cosignNote(t, at3, w3)), single},
	}
	var ins []witnessesInput
	for _, c := range cases {
		ins = append(ins, witnessesInput{Checkpoint: c.note, Policy: c.policy})
	}
	ctx := openVerifyPage(t)
	got := verifyWitnessesInBrowser(t, ctx, ins)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(c.policy))
			if err != nil {
				t.Fatal(err)
			}
			want := p.Check([]byte(c.note))
			g := got[i]
			var names []string
			for j, cs := range g.Cosigners {
				names = append(names, cs.Name)
				if j >= len(want.Cosignatures) {
					continue
				}
				if wantTime := want.Cosignatures[j].Time.UTC().Format(time.RFC3339); cs.Time != wantTime {
					t.Errorf("cosigner %s time %q, want %q", cs.Name, cs.Time, wantTime)
				}
			}
			if !g.OK || g.Met != want.Met || !slices.Equal(names, want.Cosigners) || !slices.Equal(g.Missing, nonNil(want.Missing)) ||
				g.Quorum != want.Quorum || g.Total != len(p.Witnesses) {
				t.Errorf("verifyWitnesses = %+v; Go's policy.Check = %+v", g, want)
			}
		})
	}
	checkNoCSPViolations(t, ctx)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func lastLineOf(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:] + "\n"
}

// A policy the browser cannot use fails the check, naming the line, as the
// Go parser does; a witness key that is a plain signed-note key is refused.
func TestVerifyWitnessesBadPolicy(t *testing.T) {
	w1 := newTestWitness(t, "w1.example")
	cp := "acme\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— acme AAAAAAAA\n"
	cases := []struct{ policy, want string }{
		{"witness w1 " + w1.noteV + "\nquorum w1\n", "line 1: witness w1: its key is not an Ed25519 cosignature/v1 key (type 0x04)"},
		{"witness w1 " + w1.vkey + "\nwitnes w2 x\nquorum w1\n", `line 2: unknown keyword "witnes"`},
		{"witness w1 " + w1.vkey + "\ngroup g 2 w1\nquorum g\n", `line 2: group g: threshold "2"`},
		{"witness w1 " + w1.vkey + "\ngroup g any w1 w2\nquorum g\n", `line 2: group g: unknown member "w2"`},
		{"witness w1 " + w1.vkey + "\nwitness w1 " + w1.vkey + "\nquorum w1\n", `line 2: name "w1" is already defined`},
		{"witness w1 " + w1.vkey + "\n", "no quorum line"},
		{"witness w1 " + w1.vkey + "\nquorum w2\n", `line 2: quorum "w2" is not a witness or group`},
		{"witness w1 w1.example+00000000+" + strings.SplitN(w1.vkey, "+", 3)[2] + "\nquorum w1\n", "line 1: witness w1: its key hash does not match"},
	}
	var ins []witnessesInput
	for _, c := range cases {
		if _, err := policy.Parse([]byte(c.policy)); err == nil {
			t.Fatalf("policy.Parse(%q) accepts what the browser must refuse", c.policy)
		}
		ins = append(ins, witnessesInput{Checkpoint: cp, Policy: c.policy})
	}
	ins = append(ins, witnessesInput{Checkpoint: cp, Policy: 42})
	ctx := openVerifyPage(t)
	got := verifyWitnessesInBrowser(t, ctx, ins)
	for i, c := range cases {
		if got[i].OK || !strings.Contains(got[i].Reason, c.want) {
			t.Errorf("verifyWitnesses with policy %q = %+v, want a failure saying %q", c.policy, got[i], c.want)
		}
	}
	if last := got[len(got)-1]; last.OK || !strings.Contains(last.Reason, "not text") {
		t.Errorf("verifyWitnesses with a policy that is no text = %+v", last)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0 events", 1: "1 event", 2: "2 events", 1204: "1,204 events"} {
		if got := Count(n, "event"); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
