package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/store"
)

// apiError is an error with its HTTP status and stable code. Handlers
// return it for request mistakes the trail package does not detect.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

var (
	errNoKey    = &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "missing API key: send Authorization: Bearer <key>"}
	errNotFound = &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such resource"}
	errNoTile   = &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such tile path: want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>], N in groups of three digits (x001/x234/067) and W from 1 to 255"}
)

// badParam reports an invalid query parameter.
func badParam(name, reason string) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_parameter", msg: name + ": " + reason, field: name}
}

// writeError is the one place where errors become API responses; classify
// maps them:
//
//	400 invalid_event, invalid_parameter  *event.Error, bad query parameters (*api.ParamError)
//	401 unauthorized                      no key, unknown or revoked key
//	403 forbidden                         the key lacks the scope
//	404 not_found                         no such event, size or route
//	405 method_not_allowed                a route of other methods (with Allow)
//	408 timeout                           the body did not arrive within the read timeout
//	413 too_large                         body over the limit, too many events
//	415 unsupported_media_type            not JSON or NDJSON
//	429 rate_limited                      the key is over its rate limit (with Retry-After)
//	503 unavailable                       the store could not commit or answer; the message
//	                                      says why when Trail knows (*trail.UnavailableError)
//	500 damaged                           a stored event is damaged (*trail.DamagedError): seq names it;
//	                                      or the log is (*trail.LogDamagedError): its keys do not match
//	500 internal                          anything else; details only in the log
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := s.classify(r, err)
	// The server's write deadline may have passed (a request that waited
	// for its store, or for its body, that long): give the answer a
	// moment, rather than close the connection without one.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(5 * time.Second))
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="trail"`)
	case http.StatusRequestTimeout:
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// classify maps err to its status and error body, records the code for
// the access log, and logs server-side failures.
func (s *server) classify(r *http.Request, err error) (int, api.Error) {
	var body api.Error
	status := http.StatusInternalServerError
	var ae *apiError
	var pe *api.ParamError
	var ve *event.Error
	var me *http.MaxBytesError
	var de *trail.DamagedError
	var lde *trail.LogDamagedError
	var ue *trail.UnavailableError
	switch {
	case errors.As(err, &ae):
		status, body.Error.Code, body.Error.Message, body.Error.Field = ae.status, ae.code, ae.msg, ae.field
	case errors.As(err, &pe):
		status, body.Error.Code, body.Error.Message, body.Error.Field = http.StatusBadRequest, "invalid_parameter", pe.Error(), pe.Name
	case errors.As(err, &ve):
		status, body.Error.Code, body.Error.Message, body.Error.Field = http.StatusBadRequest, "invalid_event", ve.Error(), ve.Field
		if ve.Index >= 0 {
			i := ve.Index
			body.Error.Index = &i
		}
		if r.Method == http.MethodGet { // a search filter, not an event
			body.Error.Code = "invalid_parameter"
		}
	case errors.As(err, &me):
		status, body.Error.Code = http.StatusRequestEntityTooLarge, "too_large"
		body.Error.Message = fmt.Sprintf("request body over the %d-byte limit", me.Limit)
		if me.Limit == s.opts.MaxBodyBytes {
			body.Error.Message += " (--max-body)"
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The body did not arrive within the server's read timeout: the
		// client's doing, not the server's.
		status, body.Error.Code, body.Error.Message = http.StatusRequestTimeout, "timeout", "the request body did not arrive within the server's read timeout"
	case errors.Is(err, trail.ErrUnauthorized):
		status, body.Error.Code, body.Error.Message = http.StatusUnauthorized, "unauthorized", "invalid or revoked API key"
	case errors.As(err, &de):
		// Retrying will not help, and nothing of an append was stored:
		// the message says which event and what to run.
		status, body.Error.Code, body.Error.Message, body.Error.Seq = http.StatusInternalServerError, "damaged", de.Error(), &de.Seq
		switch {
		case errors.Is(err, trail.ErrUnavailable) && r.Method == http.MethodGet:
			// A read whose record (auditRead) could not be appended.
			body.Error.Message = "this read could not be recorded in the log, so it is not served: " + body.Error.Message
		case errors.Is(err, trail.ErrUnavailable): // an append
			// Refused for the damage, not for an outage.
			body.Error.Message = "nothing was stored: " + body.Error.Message
		}
		if de.Err != nil {
			err = fmt.Errorf("%w (%v)", err, de.Err)
		}
	case errors.As(err, &lde):
		// Which file or secret holds the key is for the operator's log.
		status, body.Error.Code, body.Error.Message = http.StatusInternalServerError, "damaged", lde.Public()
	case errors.Is(err, trail.ErrNotFound):
		status, body.Error.Code, body.Error.Message = http.StatusNotFound, "not_found", err.Error()
	case errors.As(err, &ue):
		// The reason is written to be shown (no data, keys or secrets);
		// the store's own error behind it goes only to the log.
		summary := ue.Summary()
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			summary = "store unavailable" // a read stores nothing
		}
		status, body.Error.Code, body.Error.Message = http.StatusServiceUnavailable, "unavailable", summary+": "+ue.Reason
	case errors.Is(err, trail.ErrUnavailable), errors.Is(err, trail.ErrClosed), errors.Is(err, store.ErrUnreachable):
		// The last: a read of a store whose database server went away.
		msg := "store unavailable, nothing was stored; retry later"
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			msg = "store unavailable; retry later"
		}
		status, body.Error.Code, body.Error.Message = http.StatusServiceUnavailable, "unavailable", msg
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client left, or the request ran out of time: not the
		// store's failure, and an append's outcome is not known here.
		status, body.Error.Code, body.Error.Message = http.StatusServiceUnavailable, "unavailable", "the request ended before its outcome was known; an append may have been stored: retry it with the same Idempotency-Key"
		if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); r.Method != http.MethodPost || ok && info.keyID == "" {
			// A read, or a request that ended before its key was
			// checked: nothing was stored.
			body.Error.Message = "the request ended before it was answered; nothing was stored: retry it"
		}

	default:
		body.Error.Code, body.Error.Message = "internal", "internal error"
	}
	if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		info.errCode = body.Error.Code
	}
	switch {
	case status >= 500 && r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		s.opts.Logger.InfoContext(r.Context(), "request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
	case status >= 500:
		s.opts.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	return status, body
}
