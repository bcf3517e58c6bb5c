package trail

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// StoreURL names a store: which backend keeps the logs (Scheme) and where.
// Its text form, parsed by ParseStoreURL, is what trail --store and
// $TRAIL_STORE take:
//
//	sqlite:PATH        the data directory PATH, relative or absolute, taken
//	                   as written (sqlite:./trail-data, sqlite:/var/lib/trail)
//	sqlite:///PATH     the absolute data directory /PATH, in URL form: its
//	                   path is percent-decoded (sqlite:///var/lib/trail)
//	postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMS]
//	                   a PostgreSQL database, in the URL form that libpq
//	                   and pgx take (postgresql:// too), its parameters
//	                   (sslmode, connect_timeout, …) included
//
// The scheme is case-insensitive. Open(ctx, dir) is OpenStore of
// sqlite:dir.
type StoreURL struct {
	// Scheme names the backend: "sqlite" or "postgres".
	Scheme string
	// Dir is the data directory of a sqlite store.
	Dir string
	// URL is the connection URL of a postgres store, as given.
	URL string
}

// Display returns what messages call the store: a sqlite store's data
// directory, a postgres store's URL without its password.
func (u StoreURL) Display() string {
	if u.Scheme == "sqlite" {
		return u.Dir
	}
	return redactURL(u.String())
}

// String returns the URL in the form ParseStoreURL reads back, password
// included; Display hides it.
func (u StoreURL) String() string {
	if u.URL != "" {
		return u.URL
	}
	if u.Scheme == "sqlite" && strings.HasPrefix(u.Dir, "//") {
		// sqlite://… is the URL form; this keeps a path that starts with
		// two slashes a path.
		return (&url.URL{Scheme: "sqlite", Path: u.Dir}).String()
	}
	return u.Scheme + ":" + u.Dir
}

// backend opens and creates the stores of one URL scheme: form is its URL
// as errors show it; parse reads a URL of the scheme (the whole text,
// scheme included); open opens an existing store, or fails with an error
// wrapping ErrNotInitialized if there is none; create makes a new one,
// failing if one is there.
type backend struct {
	form         string
	parse        func(s string) (StoreURL, error)
	open, create func(ctx context.Context, u StoreURL, opts Options) (*DB, error)
}

// backends are the stores this build can open, by URL scheme. A backend
// is one entry here and one package under internal/store.
var backends = map[string]backend{
	"sqlite":     {form: "sqlite:DIR", parse: parseSQLiteURL, open: openSQLite, create: initSQLite},
	"postgres":   {form: "postgres://USER@HOST/DATABASE", parse: parsePostgresURL, open: openPostgres, create: initPostgres},
	"postgresql": {form: "postgres://USER@HOST/DATABASE", parse: parsePostgresURL, open: openPostgres, create: initPostgres},
}

// ParseStoreURL parses a store URL (see StoreURL). A URL without a scheme,
// or with one this build has no backend for, is an error that names the
// schemes it has.
func ParseStoreURL(s string) (StoreURL, error) {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || !validScheme(scheme) {
		hint := ""
		switch {
		case keywordPassword.MatchString(s) || strings.Contains(s, "dbname="):
			// libpq's keyword form, host=… dbname=…, not a directory.
			hint = "; write a PostgreSQL database as postgres://USER@HOST/DATABASE"
		case s != "":
			hint = fmt.Sprintf("; for the data directory %s write sqlite:%s", s, s)
		}
		return StoreURL{}, fmt.Errorf("store URL %q has no scheme: it reads SCHEME:WHERE, and this build supports %s%s", redactURL(s), supportedSchemes(), hint)
	}
	scheme = strings.ToLower(scheme)
	b, ok := backends[scheme]
	if !ok {
		return StoreURL{}, fmt.Errorf("store URL %q: this build has no %q store; it supports %s", redactURL(s), scheme, supportedSchemes())
	}
	return b.parse(s)
}

// validScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' and '.'). A Windows drive letter is one, and
// then an unknown scheme.
func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// supportedSchemes lists the URL forms of the backends, for errors.
func supportedSchemes() string {
	forms := make([]string, 0, len(backends))
	for _, s := range slices.Sorted(maps.Keys(backends)) {
		if f := backends[s].form; !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	return strings.Join(forms, ", ")
}

// redactURL hides the passwords of a URL, so that no message shows
// them: the one after the user name, and the password and sslpassword
// parameters that libpq and pgx also take from the query.
func redactURL(s string) string {
	s = keywordPassword.ReplaceAllString(s, "${1}${2}xxxxx")
	s = passwordParam.ReplaceAllString(s, "${1}xxxxx")
	u, err := url.Parse(s)
	if err == nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		return s
	}
	// Not a URL url reads, but perhaps one with a password all the same:
	// SCHEME://USER:PASSWORD@HOST…
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	// The password may hold '/', '?' or '#' (which is why url did not
	// read it): the user information runs to the last '@', and a '@'
	// further on only hides more than the password.
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return s
	}
	start := len(s) - len(rest) + colon + 1
	return s[:start] + "xxxxx" + s[start+at-colon-1:]
}

// keywordPassword matches the password of libpq's keyword form
// (host=… password=… dbname=…) up to its value, quoted or not.
var keywordPassword = regexp.MustCompile(`(?i)(^|\s)((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// passwordParam matches a password parameter of a URL's query up to its
// value, which ends at the next parameter or the fragment. A name may be
// percent-encoded in part, which pgx decodes: any escape in it matches.
var passwordParam = regexp.MustCompile(`(?i)([?&](?:ssl)?(?:p|%70)(?:a|%61)(?:s|%73)(?:s|%73)(?:w|%77)(?:o|%6f)(?:r|%72)(?:d|%64)=)[^&#]*`)

// parseSQLiteURL reads sqlite:PATH and sqlite:///PATH.
func parseSQLiteURL(s string) (StoreURL, error) {
	_, rest, _ := strings.Cut(s, ":")
	if strings.HasPrefix(rest, "//") {
		u, err := url.Parse("sqlite:" + rest)
		if err != nil {
			return StoreURL{}, fmt.Errorf("store URL %q: %v", s, err)
		}
		if u.Host != "" && u.Host != "localhost" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path == "" {
			return StoreURL{}, fmt.Errorf("store URL %q: write sqlite:PATH, or sqlite:///PATH for an absolute path, with nothing else", s)
		}
		return StoreURL{Scheme: "sqlite", Dir: u.Path}, nil
	}
	if rest == "" {
		return StoreURL{}, fmt.Errorf("store URL %q names no data directory: write sqlite:PATH", s)
	}
	return StoreURL{Scheme: "sqlite", Dir: rest}, nil
}

func openSQLite(ctx context.Context, u StoreURL, opts Options) (*DB, error) {
	return Open(ctx, u.Dir, opts)
}

func initSQLite(ctx context.Context, u StoreURL, opts Options) (*DB, error) {
	return Init(ctx, u.Dir, opts)
}
