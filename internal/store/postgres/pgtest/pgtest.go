// Package pgtest gives tests a fresh PostgreSQL database of their own.
//
// The server is the one TRAIL_TEST_POSTGRES names, a postgres:// URL
// (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable); its
// user must be allowed to create databases. DB creates a database named
// trail_test_<random> on it for the calling test and drops it when the
// test ends, so tests run in parallel, and runs, never see each other's
// data.
//
// When the server cannot be reached, DB skips the test with a message
// saying how to enable it, except under CI=true, where an unreachable
// PostgreSQL fails the test: CI must run these tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable holding the server's URL.
const EnvVar = "TRAIL_TEST_POSTGRES"

// DefaultURL is the server tests use when EnvVar is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL returns the URL of the server tests use.
func ServerURL() string {
	if u := os.Getenv(EnvVar); u != "" {
		return u
	}
	return DefaultURL
}

// Unavailable ends t because PostgreSQL cannot be used: it fails t under
// CI=true and skips it otherwise, saying why and how to enable it.
func Unavailable(t testing.TB, why error) {
	t.Helper()
	msg := fmt.Sprintf("PostgreSQL at %s is not usable: %v", redacted(ServerURL()), why)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true requires it; .ci/run starts it)", msg)
	}
	t.Skipf("%s; to run this test, start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set %s to a postgres:// URL of a server whose user may create databases",
		msg, EnvVar)
}

// DB creates an empty database for t and returns its URL: the server's URL
// with the new database's name as its path. The database is dropped, with
// any connection still open to it, when t ends.
func DB(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s = %q: want a postgres:// URL", EnvVar, redacted(server))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		Unavailable(t, err)
	}
	defer conn.Close(context.Background())

	var b [8]byte
	rand.Read(b[:])
	name := "trail_test_" + hex.EncodeToString(b[:])
	// Two CREATE DATABASE from one template at once may fail with "source
	// database is being accessed by other users"; try again a few times.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
		if err == nil || i == 20 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(time.Duration(50+i*20) * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// redacted hides the password of a URL.
func redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a malformed URL)"
	}
	return u.Redacted()
}
