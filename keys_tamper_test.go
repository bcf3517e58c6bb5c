package trail_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/store"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// TestKeysTampered changes the keys table the way SQL can: a key planted
// there, a key's scopes widened, a revoked key restored. Each disagrees
// with the log's records of its keys: the key must not authenticate, and
// Verify must say what was changed.
func TestKeysTampered(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		dir := b.New(t)
		db, err := initAt(ctx, dir, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		app, appInfo, err := db.CreateKey(ctx, testAdmin, tamperLog, "app", trail.ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		old, oldInfo, err := db.CreateKey(ctx, testAdmin, tamperLog, "old", trail.ScopeAppend)
		if err != nil {
			t.Fatal(err)
		}
		must(t, db.RevokeKey(ctx, testAdmin, oldInfo.ID))
		if _, err := db.CreateLog(ctx, "other", ""); err != nil {
			t.Fatal(err)
		}
		l, err := db.Log(ctx, tamperLog)
		if err != nil {
			t.Fatal(err)
		}
		must(t, l.WaitIndexed(ctx))
		must(t, db.Close())

		stored := func(secret string, ki trail.KeyInfo, scopes ...string) store.Key {
			h := sha256.Sum256([]byte(secret))
			return store.Key{ID: ki.ID, Name: ki.Name, Scopes: scopes, Hash: h[:], CreatedAt: ki.CreatedAt}
		}
		// A secret of the form Trail gives, for a key it never made.
		id, sec, _ := strings.Cut(strings.TrimPrefix(app, trail.KeyPrefix), "_")
		var raw [64]byte
		rand.Read(raw[:])
		plantedID := hex.EncodeToString(raw[:len(id)/2])
		planted := trail.KeyPrefix + plantedID + "_" + hex.EncodeToString(raw[32:32+len(sec)/2])

		for _, c := range []struct {
			name, secret, says string
			key                store.Key
			log                string // where the key is put, if not tamperLog
		}{
			{"planted", planted, "holds no record of its creation",
				stored(planted, trail.KeyInfo{ID: plantedID, Name: "backdoor", CreatedAt: time.Now()}, "read", "admin"), ""},
			{"scopes widened", app, "were recorded at its creation", stored(app, appInfo, "read", "admin"), ""},
			{"revocation undone", old, "records its revocation", stored(old, oldInfo, "append"), ""},
			// A secret of the attacker's choosing for a live key.
			{"secret replaced", planted, "another secret's hash", stored(planted, appInfo, "read"), ""},
			// A key moved to another log: that log holds no record of it.
			{"moved to another log", app, "holds no record of its creation", stored(app, appInfo, "read"), "other"},
		} {
			t.Run(c.name, func(t *testing.T) {
				loc := b.Copy(t, dir)
				tp := b.Tamper(t, loc)
				log := tamperLog
				if c.log != "" {
					log = c.log
				}
				must(t, tp.SetKey(ctx, log, c.key))
				must(t, tp.Close())
				db, err := openAt(ctx, loc, trail.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if ki, err := db.Authenticate(ctx, c.secret); !errors.Is(err, trail.ErrUnauthorized) {
					t.Errorf("Authenticate(the %s key) = %+v, %v; want ErrUnauthorized", c.name, ki, err)
				}
				l, err := db.Log(ctx, log)
				if err != nil {
					t.Fatal(err)
				}
				_, err = l.Verify(ctx, trail.VerifyOptions{})
				var ve *trail.VerifyError
				if !errors.As(err, &ve) || !strings.Contains(ve.Problem, c.key.ID) || !strings.Contains(ve.Problem, c.says) {
					t.Errorf("Verify() = %v; want a *trail.VerifyError naming key %s and saying %q", err, c.key.ID, c.says)
				}
				if c.key.ID != appInfo.ID {
					if _, err := db.Authenticate(ctx, app); err != nil {
						t.Errorf("Authenticate(an untouched key) = %v", err)
					}
				}
			})
		}

		// A key checked a moment ago is checked again once it is moved.
		t.Run("moved after it was checked", func(t *testing.T) {
			loc := b.Copy(t, dir)
			db, err := openAt(ctx, loc, trail.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Authenticate(ctx, app); err != nil {
				t.Fatalf("Authenticate(a key as created) = %v", err)
			}
			tp := b.Tamper(t, loc)
			must(t, tp.SetKey(ctx, "other", stored(app, appInfo, "read")))
			must(t, tp.Close())
			if ki, err := db.Authenticate(ctx, app); !errors.Is(err, trail.ErrUnauthorized) {
				t.Errorf("Authenticate(a key moved to log other) = %+v, %v; want ErrUnauthorized", ki, err)
			}
		})

		// Verify reads the records from the events, not the indexes: a
		// revocation hidden from them is still found.
		t.Run("revocation undone and hidden from the indexes", func(t *testing.T) {
			loc := b.Copy(t, dir)
			tp := b.Tamper(t, loc)
			must(t, tp.SetKey(ctx, tamperLog, stored(old, oldInfo, "append")))
			for _, ix := range []store.Index{store.IndexAction, store.IndexTarget} {
				must(t, tp.DeletePostings(ctx, tamperLog, ix, "", 0, 1<<30))
			}
			must(t, tp.Close())
			db, err := openAt(ctx, loc, trail.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			l, err := db.Log(ctx, tamperLog)
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Verify(ctx, trail.VerifyOptions{})
			if ve := (*trail.VerifyError)(nil); !errors.As(err, &ve) || !strings.Contains(ve.Problem, oldInfo.ID) || !strings.Contains(ve.Problem, "records its revocation") {
				t.Errorf("Verify() = %v; want a *trail.VerifyError saying key %s's revocation is recorded", err, oldInfo.ID)
			}
		})

		// Untouched, every key is as recorded.
		db, err = openAt(ctx, b.Copy(t, dir), trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Authenticate(ctx, app); err != nil {
			t.Errorf("Authenticate(a key as created) = %v", err)
		}
		l, err = db.Log(ctx, tamperLog)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Verify(ctx, trail.VerifyOptions{}); err != nil {
			t.Errorf("Verify() of keys as created and revoked = %v", err)
		}
	})
}

// TestKeyCreatedByAnotherDB: a key another DB (trail keys create beside
// trail serve) has just created authenticates at once, though this DB
// read the log a moment before and has not followed it since.
func TestKeyCreatedByAnotherDB(t *testing.T) {
	backends.Run(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		dir := b.New(t)
		server, err := initAt(ctx, dir, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		if _, _, err := server.CreateKey(ctx, testAdmin, tamperLog, "first", trail.ScopeRead); err != nil {
			t.Fatal(err)
		}
		cli, err := openAt(ctx, dir, trail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		for i := range 5 {
			l, err := server.Log(ctx, tamperLog)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Search(ctx, api.Query{Limit: 1}); err != nil { // the server has just read the log
				t.Fatal(err)
			}
			secret, _, err := cli.CreateKey(ctx, testAdmin, tamperLog, fmt.Sprintf("new%d", i), trail.ScopeRead)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := server.Authenticate(ctx, secret); err != nil {
				t.Fatalf("Authenticate(a key another DB has just created) = %v", err)
			}
		}
	})
}
