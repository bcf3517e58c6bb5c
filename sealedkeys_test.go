package trail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/postgres"
	"github.com/trail-audit/trail/internal/store/postgres/pgtest"
)

// openSecrets opens a PostgreSQL store on the database at url, migrating
// it, and closes it when t ends.
func openSecrets(t *testing.T, url string) store.Secrets {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatalf("postgres.Open = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newMasterKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, masterKeySize)
	rand.Read(key)
	return key
}

func newSealed(t *testing.T, s store.Secrets, master []byte) *sealedKeys {
	t.Helper()
	k, err := newSealedKeys(s, master)
	if err != nil {
		t.Fatalf("newSealedKeys = %v", err)
	}
	return k
}

// checkSigns fails t unless signer's signatures verify with vkey.
func checkSigns(t *testing.T, signer note.Signer, vkey string) {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: "checkpoint\n"}, signer)
	if err != nil {
		t.Fatalf("note.Sign = %v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", vkey, err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("note.Open(signed note) with verifier key %s = %v", vkey, err)
	}
}

func TestSealedKeysCreateSign(t *testing.T) {
	ctx := context.Background()
	k := newSealed(t, openSecrets(t, pgtest.DB(t)), newMasterKey(t))
	log := logRef{Name: "audit", Origin: "example.com/audit"}
	vkey, err := k.Create(ctx, log)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	if !strings.HasPrefix(vkey, log.Origin+"+") {
		t.Errorf("Create = %q, want a verifier key named %s", vkey, log.Origin)
	}
	log.VerifierKey = vkey
	signer, err := k.Signer(ctx, log)
	if err != nil {
		t.Fatalf("Signer = %v", err)
	}
	checkSigns(t, signer, vkey)

	// A key left by a CreateLog that stopped is returned again.
	if again, err := k.Create(ctx, logRef{Name: "audit", Origin: log.Origin}); err != nil || again != vkey {
		t.Errorf("Create(same log again) = %q, %v; want %q", again, err, vkey)
	}
	if got, err := k.Create(ctx, logRef{Name: "audit", Origin: "example.com/other"}); err == nil || !strings.Contains(err.Error(), "another origin") {
		t.Errorf("Create(same log, another origin) = %q, %v; want an error naming another origin", got, err)
	}
	wrong := logRef{Name: "audit", Origin: log.Origin, VerifierKey: "example.com/audit+00000000+AAAA"}
	if _, err := k.Signer(ctx, wrong); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Signer(another verifier key) = %v, want an error saying it does not match", err)
	}
	if _, err := k.Signer(ctx, logRef{Name: "missing", Origin: "example.com/missing"}); !errors.Is(err, ErrMissingKey) {
		t.Errorf("Signer(log without a key) = %v, want ErrMissingKey", err)
	}
}

// TestSealedKeysRace has servers on one database race to create the keys
// of the same logs: they all get one key per log, which each of them
// signs with.
func TestSealedKeysRace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := newMasterKey(t)
	const n = 4
	ks := make([]*sealedKeys, n)
	for i := range ks {
		ks[i] = newSealed(t, openSecrets(t, url), master)
	}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		log := logRef{Name: name, Origin: "example.com/" + name}
		vkeys := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, k := range ks {
			wg.Go(func() { vkeys[i], errs[i] = k.Create(ctx, log) })
		}
		wg.Wait()
		for i := range ks {
			if errs[i] != nil {
				t.Fatalf("log %s: Create through server %d = %v", name, i, errs[i])
			}
			if vkeys[i] != vkeys[0] {
				t.Fatalf("log %s: Create through server %d = %s, through server 0 = %s; want one key", name, i, vkeys[i], vkeys[0])
			}
		}
		log.VerifierKey = vkeys[0]
		for i, k := range ks {
			signer, err := k.Signer(ctx, log)
			if err != nil {
				t.Fatalf("log %s: Signer through server %d = %v", name, i, err)
			}
			checkSigns(t, signer, log.VerifierKey)
		}
	}
}

// TestSealedKeysWrongMaster checks that a server given another master key
// refuses the keys clearly, without quoting them, and that a sealed key
// moved to another log's name does not unseal.
func TestSealedKeysWrongMaster(t *testing.T) {
	ctx := context.Background()
	s := openSecrets(t, pgtest.DB(t))
	k := newSealed(t, s, newMasterKey(t))
	log := logRef{Name: "audit", Origin: "example.com/audit"}
	vkey, err := k.Create(ctx, log)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	log.VerifierKey = vkey

	other := newSealed(t, s, newMasterKey(t))
	_, err = other.Signer(ctx, log)
	if err == nil || !strings.Contains(err.Error(), "sealed with a different master key") {
		t.Fatalf("Signer with another master key = %v, want an error saying it was sealed with a different master key", err)
	}
	if strings.Contains(err.Error(), "PRIVATE") {
		t.Fatalf("Signer with another master key = %v: quotes a key", err)
	}
	if _, err := other.Create(ctx, logRef{Name: "audit", Origin: log.Origin}); err == nil || !strings.Contains(err.Error(), "sealed with a different master key") {
		t.Errorf("Create(existing log) with another master key = %v, want an error saying it was sealed with a different master key", err)
	}

	// The sealed key of audit, stored under another log's name.
	sealed, err := s.Secret(ctx, signerSecret("audit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx, signerSecret("swapped"), sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Signer(ctx, logRef{Name: "swapped", Origin: log.Origin, VerifierKey: vkey}); err == nil || !strings.Contains(err.Error(), "cannot unseal") {
		t.Errorf("Signer(log given another log's sealed key) = %v, want an error saying it cannot unseal", err)
	}

	if _, err := newSealedKeys(s, make([]byte, 16)); err == nil {
		t.Errorf("newSealedKeys(16-byte master key) = nil error, want an error")
	}
}

// TestSealedKeysNoPlaintext reads the secrets table raw and checks that it
// holds the signing key in no form a reader could use.
func TestSealedKeysNoPlaintext(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	s := openSecrets(t, url)
	k := newSealed(t, s, newMasterKey(t))
	if _, err := k.Create(ctx, logRef{Name: "audit", Origin: "example.com/audit"}); err != nil {
		t.Fatalf("Create = %v", err)
	}
	name := signerSecret("audit")
	sealed, err := s.Secret(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := k.unseal(name, sealed)
	if err != nil {
		t.Fatal(err)
	}
	skey := string(plain)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" {
		t.Fatalf("unsealed secret is not a note signer key")
	}
	private, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil {
		t.Fatal(err)
	}
	seed := private[1:]

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT name, data FROM secrets")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	n := 0
	for rows.Next() {
		var name string
		var data []byte
		if err := rows.Scan(&name, &data); err != nil {
			t.Fatal(err)
		}
		all = append(append(all, name...), data...)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("secrets table holds %d rows, want 1", n)
	}
	for what, b := range map[string][]byte{
		"the signer key":          []byte(skey),
		"its base64 private part": []byte(parts[4]),
		"its hex seed":            []byte(hex.EncodeToString(seed)),
		"its raw seed":            seed,
		"the word PRIVATE":        []byte("PRIVATE"),
	} {
		if bytes.Contains(all, b) {
			t.Errorf("secrets table holds %s in plaintext", what)
		}
	}
}

// TestSealedKeysSessionSecret has servers on one database race to make
// the session secret: they all get the same 32 bytes, which the database
// holds only sealed, and which another master key does not unseal.
func TestSealedKeysSessionSecret(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	master := newMasterKey(t)
	const n = 4
	ks := make([]*sealedKeys, n)
	for i := range ks {
		ks[i] = newSealed(t, openSecrets(t, url), master)
	}
	secrets := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, k := range ks {
		wg.Go(func() { secrets[i], errs[i] = k.SessionSecret(ctx) })
	}
	wg.Wait()
	for i := range ks {
		if errs[i] != nil {
			t.Fatalf("SessionSecret through server %d = %v", i, errs[i])
		}
		if len(secrets[i]) != 32 || !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("SessionSecret through server %d = %x, through server 0 = %x; want one 32-byte secret", i, secrets[i], secrets[0])
		}
	}
	if again, err := ks[0].SessionSecret(ctx); err != nil || !bytes.Equal(again, secrets[0]) {
		t.Errorf("SessionSecret again = %x, %v; want %x", again, err, secrets[0])
	}
	s := openSecrets(t, url)
	sealed, err := s.Secret(ctx, sessionSecretName)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secrets[0]) {
		t.Errorf("the database holds the session secret in plaintext")
	}
	if _, err := newSealed(t, s, newMasterKey(t)).SessionSecret(ctx); err == nil || !strings.Contains(err.Error(), "sealed with a different master key") {
		t.Errorf("SessionSecret with another master key = %v, want an error saying it was sealed with a different master key", err)
	}
}

func TestLoadMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xc3}, masterKeySize)
	b64 := base64.StdEncoding.EncodeToString(key)
	hx := hex.EncodeToString(key)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string // "" for success
	}{
		{"base64", b64 + "\n", 0o600, ""},
		{"hex", hx, 0o400, ""},
		{"hex upper case", strings.ToUpper(hx) + "\r\n", 0o600, ""},
		{"group readable", b64, 0o640, "group or others"},
		{"world readable", b64, 0o644, "group or others"},
		{"short base64", base64.StdEncoding.EncodeToString(key[:16]), 0o600, "want 32 random bytes"},
		{"long hex", hx + "00", 0o600, "want 32 random bytes"},
		{"bad hex", strings.Repeat("zz", 32), 0o600, "want 32 random bytes"},
		{"url base64", strings.Repeat("_", 43) + "=", 0o600, "want 32 random bytes"},
		{"two keys", b64 + "\n" + b64, 0o600, "want 32 random bytes"},
		{"empty", "", 0o600, "want 32 random bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && strings.Contains(tt.wantErr, "group") {
				t.Skip("modes are not checked on Windows")
			}
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			got, err := LoadMasterKey(path)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Errorf("LoadMasterKey(%s) = %x, %v; want %x", tt.name, got, err, key)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadMasterKey(%s) = %x, %v; want an error containing %q", tt.name, got, err, tt.wantErr)
			}
			if c := strings.TrimSpace(tt.content); c != "" && strings.Contains(err.Error(), c[:8]) {
				t.Errorf("LoadMasterKey(%s) = %v: quotes the file", tt.name, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("LoadMasterKey(%s) = %v: does not name the file", tt.name, err)
			}
		})
	}
	if _, err := LoadMasterKey(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadMasterKey(missing file) = %v, want os.ErrNotExist", err)
	}
}
