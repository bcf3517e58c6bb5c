package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trail-audit/trail/internal/store"
)

// ErrUnavailable: PostgreSQL cannot be reached now, or it lost the
// connection (it is down, restarting, or the network failed). Open, Commit
// and Writable return it as an error whose text says which, on which host,
// and what to check; nothing of a Commit that got it was stored, unless
// the connection was lost while the transaction was committing, as the
// error then says. The Store reconnects by itself once PostgreSQL is back:
// callers retry.
var ErrUnavailable = store.ErrUnreachable

// defaultConnectTimeout bounds a connection attempt, from dialling to
// login, when the URL sets no connect_timeout.
const defaultConnectTimeout = 5 * time.Second

// unavailableError is an ErrUnavailable with its explanation. It does not
// unwrap to the driver's error: callers branch on ErrUnavailable.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// commitUnknownError is an ErrUnavailable of a Commit whose connection
// broke while its transaction was committing: it also matches
// store.ErrCommitUnknown, as the batches may have been stored.
type commitUnknownError struct{ msg string }

func (e *commitUnknownError) Error() string { return e.msg }
func (e *commitUnknownError) Is(target error) bool {
	return target == ErrUnavailable || target == store.ErrCommitUnknown
}

// server is what the errors of a store name: where its database is.
type server struct {
	addr string // host:port, or the socket directory and port
	user string
	db   string
	// timeout is the connect timeout in force.
	timeout time.Duration
	// lockWait is how long a statement waits for a lock (lock_timeout).
	lockWait time.Duration
}

func newServer(cfg *pgconn.Config) server {
	s := server{user: cfg.User, db: cfg.Database, timeout: cfg.ConnectTimeout}
	port := strconv.Itoa(int(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		s.addr = cfg.Host + " (port " + port + ")"
	} else {
		s.addr = net.JoinHostPort(cfg.Host, port)
	}
	return s
}

// parseError explains a URL that pgx cannot parse. pgx's own text may hold
// the password of a malformed URL (it redacts on a best-effort basis), and
// net/url's quotes the whole URL, so neither is shown whole: only the
// parser's complaint about one part.
func parseError(err error) error {
	const want = "want postgres://user[:password]@host[:port]/database[?param=value&...] or host=... dbname=... pairs"
	var parts []string
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// pgx's text is "cannot parse `<redacted string>`: <msg> (<cause>)".
		text := pce.Error()
		if i := strings.LastIndex(text, "`: "); i >= 0 {
			msg := text[i+3:]
			if inner := pce.Unwrap(); inner != nil {
				msg = strings.TrimSuffix(msg, " ("+inner.Error()+")")
			}
			if msg != "" && !strings.Contains(msg, "`") {
				parts = append(parts, msg)
			}
		}
	}
	if inner := errors.Unwrap(err); inner != nil {
		var ue *url.Error
		var ee url.EscapeError
		if errors.As(inner, &ee) {
			// Its text quotes the bad escape, which may be in the password.
			parts = append(parts, "a % not followed by two hex digits; percent-encode special characters (% as %25)")
		} else if errors.As(inner, &ue) {
			parts = append(parts, ue.Err.Error())
		} else {
			parts = append(parts, inner.Error())
		}
	}
	detail := strings.Join(parts, ": ")
	if pce != nil {
		// Belt and braces: whatever pgx and net/url put in their texts,
		// a password that net/url can find is not shown.
		if u, err := url.Parse(pce.ConnString); err == nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				detail = strings.ReplaceAll(detail, pw, "xxxxx")
			}
		}
	}
	if detail == "" {
		return fmt.Errorf("postgres: the store URL is malformed; %s", want)
	}
	return fmt.Errorf("postgres: the store URL is malformed (%s); %s", detail, want)
}

// explain turns err, from talking to the server, into an error saying
// plainly what is wrong and what to do: an ErrUnavailable when PostgreSQL
// cannot be reached or lost the connection, a plain error when the
// database or role is missing or the login is refused. Other errors, and
// errors after ctx ended, are returned as they are. The texts never hold
// the password: pgx's errors do not, and neither do the server's.
func (sv server) explain(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	at := "PostgreSQL at " + sv.addr
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case c == "3D000": // invalid_catalog_name
			return fmt.Errorf("postgres: database %q does not exist on %s; create it (createdb %s) or fix the URL", sv.db, sv.addr, sv.db)
		case c == "28P01": // invalid_password
			return fmt.Errorf("postgres: %s refused the password of role %q; fix the password in the URL (or in PGPASSWORD or ~/.pgpass)", at, sv.user)
		case c == "28000": // invalid_authorization_specification: no such role, or pg_hba.conf refuses
			return fmt.Errorf("postgres: %s refused the login as role %q: %s; create the role (createuser %s), fix the user in the URL, or allow it in pg_hba.conf", at, sv.user, pgErr.Message, sv.user)
		case c == "57P01", c == "57P02": // admin_shutdown, crash_shutdown
			return &unavailableError{fmt.Sprintf("postgres: %s closed the connection (%s); is it being restarted? Trail reconnects by itself", at, pgErr.Message)}
		case c == "57P03": // cannot_connect_now
			return &unavailableError{fmt.Sprintf("postgres: %s is not accepting connections yet (%s); Trail reconnects by itself", at, pgErr.Message)}
		case c == "53300": // too_many_connections
			return &unavailableError{fmt.Sprintf("postgres: %s has too many connections (%s); raise its max_connections or lower pool_max_conns in the URL", at, pgErr.Message)}
		case c == "55P03": // lock_not_available: lock_timeout passed
			return &unavailableError{fmt.Sprintf("postgres: %s: a lock Trail waited for stayed held by another session for %v (%s); a transaction or LOCK TABLE of someone else's holds it? Nothing was stored", at, sv.lockWait.Round(time.Second), pgErr.Message)}
		case strings.HasPrefix(c, "08"): // connection_exception
			return &unavailableError{fmt.Sprintf("postgres: %s: connection failure (%s); Trail reconnects by itself", at, pgErr.Message)}
		}
		return err
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var noAnswer *noAnswerError
	switch {
	case errors.As(err, &noAnswer):
		return &unavailableError{fmt.Sprintf("postgres: %s did not %s within %v: is the network to it down, is it stalled, or was this server paused meanwhile? Trail reconnects by itself", at, noAnswer.op, noAnswer.wait)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &unavailableError{fmt.Sprintf("postgres: %s: connection refused; is it running, on that host and port?", at)}
	case errors.As(err, &dnsErr):
		return &unavailableError{fmt.Sprintf("postgres: %s: host %q not found; fix the host in the URL", at, dnsErr.Name)}
	case pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded), isNetTimeout(err):
		within := ""
		if sv.timeout > 0 {
			within = " within " + sv.timeout.String()
		}
		return &unavailableError{fmt.Sprintf("postgres: %s: no answer%s; is it running, and is the host and port right? (connect_timeout in the URL sets the wait)", at, within)}
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return &unavailableError{fmt.Sprintf("postgres: %s: network unreachable; check the host in the URL and the network", at)}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &unavailableError{fmt.Sprintf("postgres: %s: cannot connect (%v); is it running, and is the host and port right?", at, opErr.Err)}
	case isConnLost(err):
		return &unavailableError{fmt.Sprintf("postgres: %s: the connection was lost (%s); is it running? Trail reconnects by itself", at, lostDetail(err))}
	}
	return err
}

// isNetTimeout reports a network timeout.
func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isConnLost reports an error of a connection that broke while in use.
func isConnLost(err error) bool {
	var opErr *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.As(err, &opErr) || strings.Contains(err.Error(), "conn closed")
}

// lostDetail names how the connection broke, in a few words.
func lostDetail(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset by the server"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by the server"
	}
	return "closed"
}
