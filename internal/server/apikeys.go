package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return err
	}
	var req api.KeyRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: `want {"name": "...", "scopes": ["append"|"read"|"admin", ...]}`}
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
	id := r.PathValue("id")
	k, err := s.db.Key(r.Context(), id)
	if errors.Is(err, trail.ErrNotFound) || err == nil && k.Log != l.Name() {
		return errNotFound // another log's key is not found, not forbidden
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
