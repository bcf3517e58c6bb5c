package trail_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
)

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want trail.StoreURL
		// wantErr lists what the error must say; nil means no error.
		wantErr []string
	}{
		{in: "sqlite:trail-data", want: trail.StoreURL{Scheme: "sqlite", Dir: "trail-data"}},
		{in: "sqlite:./data", want: trail.StoreURL{Scheme: "sqlite", Dir: "./data"}},
		{in: "sqlite:../up/data", want: trail.StoreURL{Scheme: "sqlite", Dir: "../up/data"}},
		{in: "sqlite:/var/lib/trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "/var/lib/trail"}},
		{in: "SQLite:/var/lib/trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "/var/lib/trail"}},
		{in: "sqlite:a%20b:c", want: trail.StoreURL{Scheme: "sqlite", Dir: "a%20b:c"}},
		{in: "sqlite:///var/lib/trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "/var/lib/trail"}},
		{in: "sqlite:///var/lib/my%20trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "/var/lib/my trail"}},
		{in: "sqlite://localhost/var/lib/trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "/var/lib/trail"}},
		{in: "sqlite:////srv/trail", want: trail.StoreURL{Scheme: "sqlite", Dir: "//srv/trail"}},

		{in: "", wantErr: []string{"no scheme", "sqlite:"}},
		{in: "./trail-data", wantErr: []string{"no scheme", "sqlite:./trail-data"}},
		{in: "/var/lib/trail", wantErr: []string{"no scheme", "sqlite:/var/lib/trail"}},
		{in: "sqlite:", wantErr: []string{"no data directory"}},
		{in: "sqlite://", wantErr: []string{"sqlite:///PATH"}},
		{in: "sqlite://db.example.com/trail", wantErr: []string{"sqlite:///PATH"}},
		{in: "sqlite:///var/lib/trail?mode=ro", wantErr: []string{"sqlite:///PATH"}},
		{in: "sqlite://user@/var/lib/trail", wantErr: []string{"sqlite:///PATH"}},
		{in: "postgres://trail:hunter2@db.example.com/trail", want: trail.StoreURL{Scheme: "postgres", URL: "postgres://trail:hunter2@db.example.com/trail"}},
		{in: "postgresql://db.example.com/trail?sslmode=require", want: trail.StoreURL{Scheme: "postgres", URL: "postgresql://db.example.com/trail?sslmode=require"}},
		{in: "postgres://trail:hunter2@db.example.com/", wantErr: []string{"names no database", "postgres://trail:xxxxx@db.example.com/"}},
		{in: "postgres://trail:hunter2@db.example.com:99999999/trail%zz", wantErr: []string{"not a valid URL"}},
		{in: "postgres://db.example.com/?sslmode=disable&password=hunter2", wantErr: []string{"names no database", "sslmode=disable", "password=xxxxx"}},
		{in: "postgres://trail@db.example.com:99999999/trail%zz?PassWord=hunter2&x=1", wantErr: []string{"not a valid URL", "PassWord=xxxxx&x=1"}},
		{in: "postgres://trail:hunter2@db.example.com/?sslpassword=hunter2", wantErr: []string{"names no database", "trail:xxxxx@", "sslpassword=xxxxx"}},
		{in: "file://x/?password=hunter2", wantErr: []string{`no "file" store`}},
		{in: "postgres://trail:hun/ter2@db.example.com/trail", wantErr: []string{"not a valid URL", "trail:xxxxx@db.example.com"}},
		{in: "postgres://trail:hunter2#x@db.example.com/trail", wantErr: []string{"not a valid URL", "trail:xxxxx@db.example.com"}},
		{in: "host=127.0.0.1 password=hunter2 dbname=trail", wantErr: []string{"no scheme", "password=xxxxx", "postgres://USER@HOST/DATABASE"}},
		{in: "host=127.0.0.1 password='hunter2 x' dbname=trail", wantErr: []string{"no scheme", "password=xxxxx dbname"}},
		{in: "file:/var/lib/trail", wantErr: []string{`no "file" store`, "sqlite:DIR", "postgres://"}},
		{in: "1sqlite:x", wantErr: []string{"no scheme"}},
		{in: "postgres://trail:Tr@hunter2@127.0.0.1:5432/trail", wantErr: []string{"holds '@'", "%40", "trail:xxxxx@127.0.0.1"}},
		{in: "postgres://trail:Tr%40hunter2@127.0.0.1:5432/trail?application_name=a@b", want: trail.StoreURL{Scheme: "postgres", URL: "postgres://trail:Tr%40hunter2@127.0.0.1:5432/trail?application_name=a@b"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := trail.ParseStoreURL(tc.in)
			if tc.wantErr == nil {
				if err != nil || got != tc.want {
					t.Fatalf("ParseStoreURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
				}
				back, err := trail.ParseStoreURL(got.String())
				if err != nil || back != got {
					t.Errorf("ParseStoreURL(%q.String() = %q) = %+v, %v; want %+v", tc.in, got.String(), back, err, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseStoreURL(%q) = %+v, want an error", tc.in, got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseStoreURL(%q) = error %q, want it to say %q", tc.in, err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseStoreURL(%q) = error %q, which shows the password", tc.in, err)
			}
		})
	}
}

// Display, what messages and the serve banner show, hides every
// password a postgres URL may carry, and keeps the rest.
func TestStoreURLDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://trail:hunter2@db.example.com/trail":                        "postgres://trail:xxxxx@db.example.com/trail",
		"postgres://db.example.com/trail?password=hunter2":                     "postgres://db.example.com/trail?password=xxxxx",
		"postgres://db.example.com/trail?sslmode=require&Password=hunter2&a=b": "postgres://db.example.com/trail?sslmode=require&Password=xxxxx&a=b",
		"postgres://db.example.com/trail?sslpassword=hunter2#f":                "postgres://db.example.com/trail?sslpassword=xxxxx#f",
		"postgres://db.example.com/trail?pass%77ord=hunter2":                   "postgres://db.example.com/trail?pass%77ord=xxxxx",
		"postgres://db.example.com/trail?passwords=1&sslmode=disable":          "postgres://db.example.com/trail?passwords=1&sslmode=disable",
		"sqlite:/var/lib/trail":                                                "/var/lib/trail",
	} {
		u, err := trail.ParseStoreURL(in)
		if err != nil {
			t.Fatalf("ParseStoreURL(%q) = %v", in, err)
		}
		if got := u.Display(); got != want {
			t.Errorf("ParseStoreURL(%q).Display() = %q, want %q", in, got, want)
		}
	}
}

// A StoreURL prints in a form that parses back to it, whatever its
// directory holds.
func TestStoreURLString(t *testing.T) {
	for _, dir := range []string{"data", "/abs/data", "//srv/share", "//a%b c", "a%20b", "sqlite:x", "./"} {
		u := trail.StoreURL{Scheme: "sqlite", Dir: dir}
		back, err := trail.ParseStoreURL(u.String())
		if err != nil || back != u {
			t.Errorf("ParseStoreURL(%q) = %+v, %v; want %+v", u.String(), back, err, u)
		}
	}
}

// OpenStore and InitStore of a sqlite URL are Open and Init of its
// directory; a URL of another scheme opens nothing and creates nothing.
func TestOpenStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := trail.OpenStore(ctx, "sqlite:"+dir, trail.Options{}); !errors.Is(err, trail.ErrNotInitialized) {
		t.Fatalf("OpenStore before InitStore = %v, want ErrNotInitialized", err)
	}
	db, err := trail.InitStore(ctx, "sqlite:"+dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLog(ctx, "audit", "example.com/audit"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "audit.key")); err != nil {
		t.Errorf("the log's signing key is not in the data directory: %v", err)
	}
	if db, err := trail.InitStore(ctx, "sqlite:"+dir, trail.Options{}); err == nil {
		db.Close()
		t.Error("InitStore over an existing store succeeded")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"sqlite:" + dir, "sqlite://" + filepath.ToSlash(abs)} {
		db, err := trail.OpenStore(ctx, url, trail.Options{})
		if err != nil {
			t.Fatalf("OpenStore(%q): %v", url, err)
		}
		if _, err := db.Log(ctx, "audit"); err != nil {
			t.Errorf("OpenStore(%q).Log(audit): %v", url, err)
		}
		if db.Dir() != dir && db.Dir() != abs {
			t.Errorf("OpenStore(%q).Dir() = %q, want %q", url, db.Dir(), dir)
		}
		db.Close()
	}
	empty := t.TempDir()
	for _, url := range []string{"postgres://localhost/trail", empty} {
		if db, err := trail.OpenStore(ctx, url, trail.Options{}); err == nil {
			db.Close()
			t.Errorf("OpenStore(%q) succeeded", url)
		}
		if db, err := trail.InitStore(ctx, url, trail.Options{}); err == nil {
			db.Close()
			t.Errorf("InitStore(%q) succeeded", url)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("InitStore of a URL without a scheme created %d entries in %s", len(entries), empty)
	}
}

// The viewer's session secret and sign-outs are kept by the store, so
// every DB on it shares them; a read-only DB makes and records nothing.
func TestSessionsShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := trail.Open(ctx, dir, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ro, err := trail.Open(ctx, dir, trail.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.SessionSecret(ctx); !errors.Is(err, trail.ErrReadOnly) {
		t.Errorf("SessionSecret of a read-only DB = %v, want ErrReadOnly", err)
	}
	sa, err := a.SessionSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.SessionSecret(ctx)
	if err != nil || string(sa) != string(sb) || len(sa) != 32 {
		t.Fatalf("SessionSecret of two DBs on one store = %x and %x, %v; want the same 32 bytes", sa, sb, err)
	}
	if err := a.EndSession(ctx, "c2Vzc2lvbg", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*trail.DB{"the same DB": a, "another DB": b, "a read-only DB": ro} {
		if ended, err := db.SessionEnded(ctx, "c2Vzc2lvbg"); err != nil || !ended {
			t.Errorf("SessionEnded through %s after EndSession = %v, %v; want true", name, ended, err)
		}
	}
	if ended, err := b.SessionEnded(ctx, "b3RoZXI"); err != nil || ended {
		t.Errorf("SessionEnded of a session not signed out = %v, %v; want false", ended, err)
	}
	if err := ro.EndSession(ctx, "b3RoZXI", time.Now().Add(time.Hour)); !errors.Is(err, trail.ErrReadOnly) {
		t.Errorf("EndSession through a read-only DB = %v, want ErrReadOnly", err)
	}
	for _, id := range []string{"", "../keys/audit", "a.b", strings.Repeat("a", 65)} {
		if err := a.EndSession(ctx, id, time.Now().Add(time.Hour)); err == nil {
			t.Errorf("EndSession(%q) succeeded, want an error", id)
		}
		if ended, err := a.SessionEnded(ctx, id); err != nil || ended {
			t.Errorf("SessionEnded(%q) = %v, %v; want false", id, ended, err)
		}
	}
}
