package merkle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testHash is a fixed hash whose base64 form is
// "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", from the C2SP example.
var testHash = mustParseHash("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")

func mustParseHash(s string) tlog.Hash {
	h, err := tlog.ParseHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    Checkpoint
		want string
	}{
		{
			name: "spec example",
			c:    Checkpoint{Origin: "example.com/behind-the-sofa", Size: 20852163, Hash: testHash},
			want: "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		},
		{
			name: "empty tree",
			c:    Checkpoint{Origin: "trail.example/log", Size: 0, Hash: tlog.Hash(sha256.Sum256(nil))},
			want: "trail.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		},
		{
			name: "extensions and unicode",
			c:    Checkpoint{Origin: "trail.example/ünïcode log", Size: 1<<63 - 1, Extensions: []string{"ext one", "— two"}},
			want: "trail.example/ünïcode log\n9223372036854775807\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\n— two\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.c.Marshal()); got != tt.want {
				t.Errorf("Marshal() = %q, want %q", got, tt.want)
			}
			got, err := ParseCheckpoint([]byte(tt.want))
			if err != nil {
				t.Fatalf("ParseCheckpoint(%q) = %v", tt.want, err)
			}
			if !equalCheckpoints(got, tt.c) {
				t.Errorf("ParseCheckpoint(%q) = %+v, want %+v", tt.want, got, tt.c)
			}
		})
	}
}

func equalCheckpoints(a, b Checkpoint) bool {
	return a.Origin == b.Origin && a.Size == b.Size && a.Hash == b.Hash && slices.Equal(a.Extensions, b.Extensions)
}

func TestParseCheckpointRejects(t *testing.T) {
	const hash = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"one line", "origin\n"},
		{"two lines", "origin\n5\n"},
		{"no final newline", "origin\n5\n" + hash},
		{"extra final newline", "origin\n5\n" + hash + "\n\n"},
		{"empty origin", "\n5\n" + hash + "\n"},
		{"origin with tab", "ori\tgin\n5\n" + hash + "\n"},
		{"origin with carriage return", "origin\r\n5\n" + hash + "\n"},
		{"origin with DEL", "origin\x7f\n5\n" + hash + "\n"},
		{"origin with C1 control", "origin\u0085\n5\n" + hash + "\n"},
		{"origin not UTF-8", "origin\xff\n5\n" + hash + "\n"},
		{"empty size", "origin\n\n" + hash + "\n"},
		{"leading zero", "origin\n05\n" + hash + "\n"},
		{"double zero", "origin\n00\n" + hash + "\n"},
		{"plus sign", "origin\n+5\n" + hash + "\n"},
		{"minus sign", "origin\n-5\n" + hash + "\n"},
		{"negative zero", "origin\n-0\n" + hash + "\n"},
		{"size with space", "origin\n5 \n" + hash + "\n"},
		{"hex size", "origin\n0x5\n" + hash + "\n"},
		{"size overflows int64", "origin\n9223372036854775808\n" + hash + "\n"},
		{"empty hash", "origin\n5\n\n"},
		{"short hash", "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n"},
		{"long hash", "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2IA\n"},
		{"hash without padding", "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n"},
		{"hash not canonical", "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n"},
		{"url-safe hash", "origin\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n"},
		{"hash with space", "origin\n5\n " + hash + "\n"},
		{"empty extension", "origin\n5\n" + hash + "\n\next\n"},
		{"extension with control", "origin\n5\n" + hash + "\next\x00\n"},
		{"CRLF lines", "origin\r\n5\r\n" + hash + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCheckpoint([]byte(tt.text))
			if !errors.Is(err, ErrMalformedCheckpoint) {
				t.Errorf("ParseCheckpoint(%q) = %+v, %v, want ErrMalformedCheckpoint", tt.text, c, err)
			}
		})
	}
}

// testKeys returns a fresh signer and verifier for name.
func testKeys(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := NewKey(name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier
}

func TestSignOpen(t *testing.T) {
	const origin = "trail.example/log/1"
	signer, verifier := testKeys(t, origin)
	c := Checkpoint{Origin: origin, Size: 1234, Hash: testHash, Extensions: []string{"ext"}}
	signed, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, c.Marshal()) {
		t.Errorf("Sign() = %q, want it to start with the body %q", signed, c.Marshal())
	}

	got, n, err := Open(signed, verifier)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if !equalCheckpoints(got, c) {
		t.Errorf("Open() = %+v, want %+v", got, c)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != origin || n.Sigs[0].Hash != verifier.KeyHash() {
		t.Errorf("Open() note signatures = %+v, want one by %s", n.Sigs, origin)
	}

	// Any signed-note implementation can open it.
	n, err = note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		t.Fatalf("note.Open() = %v", err)
	}
	if n.Text != string(c.Marshal()) {
		t.Errorf("note.Open().Text = %q, want %q", n.Text, c.Marshal())
	}

	// A signature by another key is kept as unverified.
	otherSigner, _ := testKeys(t, "witness.example")
	cosigned, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err = Open(cosigned, verifier)
	if err != nil {
		t.Fatalf("Open(cosigned) = %v", err)
	}
	if !equalCheckpoints(got, c) || len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 || n.UnverifiedSigs[0].Name != "witness.example" {
		t.Errorf("Open(cosigned) = %+v, sigs %+v, unverified %+v", got, n.Sigs, n.UnverifiedSigs)
	}
}

func TestOpenRejects(t *testing.T) {
	const origin = "trail.example/log/1"
	signer, verifier := testKeys(t, origin)
	_, otherVerifier := testKeys(t, origin) // same name, other key
	c := Checkpoint{Origin: origin, Size: 1234, Hash: testHash}
	signed, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	body := len(c.Marshal())

	alteredBody := bytes.Replace(signed, []byte("1234"), []byte("1235"), 1)
	alteredSig := bytes.Clone(signed)
	// Change a base64 character in the middle of the signature to another.
	if i := len(alteredSig) - 10; alteredSig[i] == 'A' {
		alteredSig[i] = 'B'
	} else {
		alteredSig[i] = 'A'
	}
	noSig := signed[:body]

	// A valid signature over a body that is not a checkpoint.
	notCheckpoint, err := note.Sign(&note.Note{Text: origin + "\n01\n" + testHash.String() + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}

	// A valid signature by a key whose name is not the origin.
	mismatchSigner, mismatchVerifier := testKeys(t, "other.example/log")
	mismatched, err := note.Sign(&note.Note{Text: string(c.Marshal())}, mismatchSigner)
	if err != nil {
		t.Fatal(err)
	}

	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	tests := []struct {
		name     string
		signed   []byte
		verifier note.Verifier
		check    func(error) bool
	}{
		{"wrong key", signed, otherVerifier, func(err error) bool { return errors.As(err, &unverified) }},
		{"altered body", alteredBody, verifier, func(err error) bool { return errors.As(err, &invalid) }},
		{"altered signature", alteredSig, verifier, func(err error) bool { return errors.As(err, &invalid) }},
		{"no signature", noSig, verifier, func(err error) bool { return err != nil }},
		{"empty", nil, verifier, func(err error) bool { return err != nil }},
		{"malformed body", notCheckpoint, verifier, func(err error) bool { return errors.Is(err, ErrMalformedCheckpoint) }},
		{"origin mismatch", mismatched, mismatchVerifier, func(err error) bool { return errors.Is(err, ErrOriginMismatch) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := Open(tt.signed, tt.verifier)
			if err == nil || !tt.check(err) || n != nil {
				t.Errorf("Open() = %+v, %v, %v; want the error this case expects", got, n, err)
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	const origin = "trail.example/log/1"
	signer, _ := testKeys(t, origin)
	tests := []struct {
		name string
		c    Checkpoint
		want error
	}{
		{"origin mismatch", Checkpoint{Origin: "trail.example/log/2", Size: 1}, ErrOriginMismatch},
		{"negative size", Checkpoint{Origin: origin, Size: -1}, ErrMalformedCheckpoint},
		{"empty extension", Checkpoint{Origin: origin, Size: 1, Extensions: []string{""}}, ErrMalformedCheckpoint},
		{"extension with newline", Checkpoint{Origin: origin, Size: 1, Extensions: []string{"a\nb"}}, ErrMalformedCheckpoint},
		{"empty origin", Checkpoint{Origin: "", Size: 1}, ErrMalformedCheckpoint},
		{"origin with newline", Checkpoint{Origin: origin + "\n", Size: 1}, ErrMalformedCheckpoint},
		{"extension not UTF-8", Checkpoint{Origin: origin, Size: 1, Extensions: []string{"\xff"}}, ErrMalformedCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Sign(tt.c, signer); !errors.Is(err, tt.want) {
				t.Errorf("Sign(%+v) = %q, %v, want %v", tt.c, got, err, tt.want)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	for _, name := range []string{"", "has space", "has+plus", "tab\tname", "ctl\x01name", "bad\xffutf8"} {
		if _, _, err := NewKey(name); err == nil {
			t.Errorf("NewKey(%q) = nil error, want error", name)
		}
	}
	skey, vkey, err := NewKey("trail.example/log")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+trail.example/log+") || !strings.HasPrefix(vkey, "trail.example/log+") {
		t.Errorf("NewKey() = %q, %q; want keys named trail.example/log", skey, vkey)
	}
	_, vkey2, err := NewKey("trail.example/log")
	if err != nil {
		t.Fatal(err)
	}
	if vkey == vkey2 {
		t.Error("two NewKey calls returned the same key")
	}
}

// FuzzParseCheckpoint checks that parsing never panics and that every
// accepted body is exactly the marshaled form of what it parses to. Its seeds
// are in testdata/fuzz/FuzzParseCheckpoint.
func FuzzParseCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, ErrMalformedCheckpoint) {
				t.Fatalf("ParseCheckpoint(%q) = %v, want ErrMalformedCheckpoint", text, err)
			}
			return
		}
		out := c.Marshal()
		if !bytes.Equal(out, text) {
			t.Fatalf("ParseCheckpoint(%q).Marshal() = %q, want the input", text, out)
		}
		c2, err := ParseCheckpoint(out)
		if err != nil || !equalCheckpoints(c, c2) {
			t.Fatalf("ParseCheckpoint(Marshal()) = %+v, %v, want %+v", c2, err, c)
		}
	})
}
