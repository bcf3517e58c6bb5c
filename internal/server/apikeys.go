package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
)

// Key management over the API, for admin keys, within the key's own log:
//
//	POST   /v1/keys       {"name", "scopes": [...]} -> {"key": secret, ...KeyInfo}, 201
//	GET    /v1/keys       {"keys": [KeyInfo...]} of the log
//	DELETE /v1/keys/{id}  revoke; 204
//
// An admin key cannot see or revoke another log's keys (404). Each call is
// recorded in the log, by the trail package, as a trail.key.create,
// trail.key.revoke or trail.key.list event naming the admin key.

func (s *server) createKey(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// As for events, no Content-Type is read as JSON; any other
		// type is refused, a form's above all.
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "send application/json"}
		}
	}
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	req, err := parseKeyRequest(body)
	if err != nil {
		return err
	}
	if len(req.Scopes) == 0 {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: "scopes: at least one of append, read, admin", field: "scopes"}
	}
	scopes := make([]trail.Scope, len(req.Scopes))
	for i, sc := range req.Scopes {
		if scopes[i], err = trail.ParseScope(sc); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: "scopes: " + err.Error(), field: "scopes"}
		}
	}
	if !trail.ValidKeyName(req.Name) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: "name: at most 128 bytes of printable UTF-8", field: "name"}
	}
	secret, info, err := s.db.CreateKey(r.Context(), caller(r, key), l.Name(), req.Name, scopes...)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.NewKey{Key: secret, KeyInfo: info.Wire()})
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	keys, err := s.db.ListKeys(r.Context(), caller(r, key), l.Name())
	if err != nil {
		return err
	}
	out := api.Keys{}
	if keys != nil {
		out.Keys = make([]api.KeyInfo, len(keys))
		for i, k := range keys {
			out.Keys[i] = k.Wire()
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	k, err := s.db.Key(r.Context(), id)
	if errors.Is(err, trail.ErrNotFound) || err == nil && k.Log != l.Name() {
		// Another log's key is not found, not forbidden.
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "this log has no API key " + strconv.Quote(id)}
	}
	if err != nil {
		return err
	}
	if err := s.db.RevokeKey(r.Context(), caller(r, key), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseKeyRequest reads the body of POST /v1/keys as strictly as events
// are read: one JSON object of valid UTF-8 with the fields name and
// scopes, each once, spelt exactly, and nothing after it. Errors name the
// field.
func parseKeyRequest(body []byte) (api.KeyRequest, error) {
	var req api.KeyRequest
	bad := func(field, msg string) (api.KeyRequest, error) {
		if field != "" {
			msg = field + ": " + msg
		}
		return req, &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: msg, field: field}
	}
	const want = `want {"name": "...", "scopes": ["append"|"read"|"admin", ...]}`
	if !utf8.Valid(body) {
		return bad("", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("", want)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok {
			return bad("", "invalid JSON; "+want)
		}
		if seen[name] {
			return bad(name, "duplicate key")
		}
		seen[name] = true
		switch name {
		case "name":
			if err := dec.Decode(&req.Name); err != nil {
				return bad("name", "must be a string")
			}
		case "scopes":
			if err := dec.Decode(&req.Scopes); err != nil {
				return bad("scopes", `must be an array of "append", "read" or "admin"`)
			}
		default:
			return bad(name, "unknown field; "+want)
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad("", "invalid JSON; "+want)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("", "data after the object")
	}
	return req, nil
}
