package trail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/internal/store/postgres"
)

// A postgres store is one PostgreSQL database shared by any number of
// servers: the logs, their events and indexes, the API keys, and the
// signing keys and session secret sealed with the master key
// (sealedKeys), so that every server finds all of it there. Its schema
// comes from numbered migrations (internal/store/postgres), applied by
// InitStore, by MigrateStore (trail migrate) or by OpenStore with
// Options.Migrate.

// errNoMasterKey is why a postgres store opened for writing without
// Options.MasterKey is refused.
var errNoMasterKey = errors.New("a PostgreSQL store keeps the logs' signing keys sealed with a master key, " +
	"which writing needs: give the master key file (trail --master-key-file FILE, or $TRAIL_MASTER_KEY_FILE; " +
	"trail init creates it); reading alone needs none (Options.ReadOnly; trail search, get, export and verify)")

// parsePostgresURL reads postgres://… and postgresql://…: a URL with a
// host or a socket directory, as libpq and pgx take it. The URL is kept
// as given; only its form is checked here, and connecting says the rest.
func parsePostgresURL(s string) (StoreURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the URL, password included.
		return StoreURL{}, fmt.Errorf("store URL %s: not a valid URL; write postgres://USER@HOST[:PORT]/DATABASE", redactURL(s))
	}
	if rest, ok := strings.CutPrefix(s[len(u.Scheme)+1:], "//"); ok {
		authority, _, _ := strings.Cut(rest, "/")
		authority, _, _ = strings.Cut(authority, "?")
		if strings.Count(authority, "@") > 1 {
			// Go's URLs take the last '@' as the end of the password,
			// pgx the first: the rest of the password would be taken
			// for the host, and shown as one.
			return StoreURL{}, fmt.Errorf("store URL %s: its user name or password holds '@': write it as %%40", redactURL(s))
		}
	}
	if u.Opaque != "" || strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == "" {
		return StoreURL{}, fmt.Errorf("store URL %s names no database: write postgres://USER@HOST[:PORT]/DATABASE", redactURL(s))
	}
	return StoreURL{Scheme: "postgres", URL: s}, nil
}

// openPostgres opens the postgres store of u: ErrNotInitialized when the
// database holds no Trail schema (and opts.Migrate does not ask for it).
func openPostgres(ctx context.Context, u StoreURL, opts Options) (*DB, error) {
	if !opts.ReadOnly && len(opts.MasterKey) == 0 {
		return nil, fmt.Errorf("%s: %w", u.Display(), errNoMasterKey)
	}
	st, err := postgres.Open(ctx, u.URL, postgres.Options{Migrate: opts.Migrate && !opts.ReadOnly, Logger: opts.Logger, NoIndexer: opts.ReadOnly})
	switch {
	case errors.Is(err, postgres.ErrNoSchema):
		return nil, &noSchemaError{fmt.Sprintf("%s: not a Trail database (it holds no Trail schema; create it with trail init --store URL, or trail migrate --store URL)", u.Display())}
	case errors.Is(err, postgres.ErrNeedsUpgrade):
		return nil, fmt.Errorf("%s: %w: run trail migrate --store URL, or start trail serve with --migrate", u.Display(), err)
	case err != nil:
		return nil, err
	}
	return newPostgresDB(ctx, u, st, opts)
}

// initPostgres creates Trail's schema in the database of u, which must
// hold none.
func initPostgres(ctx context.Context, u StoreURL, opts Options) (*DB, error) {
	if opts.ReadOnly {
		return nil, fmt.Errorf("%s: cannot create a store read-only", u.Display())
	}
	if len(opts.MasterKey) == 0 {
		return nil, fmt.Errorf("%s: %w", u.Display(), errNoMasterKey)
	}
	st, err := postgres.Open(ctx, u.URL, postgres.Options{Logger: opts.Logger, NoIndexer: true})
	if err == nil || errors.Is(err, postgres.ErrNeedsUpgrade) || errors.Is(err, postgres.ErrNewerSchema) {
		if st != nil {
			st.Close()
		}
		return nil, fmt.Errorf("%s already holds a Trail store", u.Display())
	}
	if !errors.Is(err, postgres.ErrNoSchema) {
		return nil, err
	}
	st, err = postgres.Open(ctx, u.URL, postgres.Options{Migrate: true, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return newPostgresDB(ctx, u, st, opts)
}

// newPostgresDB returns the DB of the open postgres store u: its secrets
// sealed with opts.MasterKey, which must open those already stored, none
// read when the DB is read-only.
func newPostgresDB(ctx context.Context, u StoreURL, st *postgres.Store, opts Options) (*DB, error) {
	if opts.ReadOnly {
		return newDB("", st, noSecrets{}, noSecrets{}, nil, opts), nil
	}
	keys, err := newSealedKeys(st, opts.MasterKey)
	if err == nil {
		err = keys.check(ctx, st)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", u.Display(), err)
	}
	return newDB("", st, keys, keys, nil, opts), nil
}

// Migration is what MigrateStore did: the store's schema version before
// and after.
type Migration struct {
	From, To int64
}

// MigrateStore brings the schema of the store that url names up to this
// build's, applying the migrations it lacks (creating Trail's schema in
// an empty PostgreSQL database), under a lock that lets servers start
// meanwhile. A store whose schema is newer than this build's is refused
// untouched. It needs no master key. A sqlite store upgrades its schema
// whenever it is opened, which MigrateStore does.
func MigrateStore(ctx context.Context, storeURL string, logger *slog.Logger) (Migration, error) {
	u, err := ParseStoreURL(storeURL)
	if err != nil {
		return Migration{}, err
	}
	if u.Scheme == "sqlite" {
		db, err := Open(ctx, u.Dir, Options{Logger: logger})
		if err != nil {
			return Migration{}, err
		}
		return Migration{}, db.Close()
	}
	from, to, err := postgres.Migrate(ctx, u.URL, logger)
	return Migration{From: from, To: to}, err
}

// noSecrets is the signerSource and sessionKeeper of a read-only postgres
// DB, which neither signs nor keeps sessions.
type noSecrets struct{}

func (noSecrets) Signer(context.Context, logRef) (note.Signer, error) { return nil, ErrReadOnly }
func (noSecrets) Create(context.Context, logRef) (string, error)      { return "", ErrReadOnly }
func (noSecrets) SessionSecret(context.Context) ([]byte, error)       { return nil, ErrReadOnly }
func (noSecrets) EndSession(context.Context, string, time.Time) error { return ErrReadOnly }
func (noSecrets) SessionEnded(context.Context, string) (bool, error)  { return false, ErrReadOnly }

// noSchemaError is ErrNotInitialized for a database: it says database, not
// data directory.
type noSchemaError struct{ msg string }

func (e *noSchemaError) Error() string        { return e.msg }
func (e *noSchemaError) Is(target error) bool { return target == ErrNotInitialized }
