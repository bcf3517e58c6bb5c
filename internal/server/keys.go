package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/trail-audit/trail"
)

// Key management over the API, for admin keys, within the key's own log:
//
//	POST   /v1/keys       {"name", "scopes": [...]} -> {"key": secret, ...KeyInfo}, 201
//	GET    /v1/keys       {"keys": [KeyInfo...]} of the log
//	DELETE /v1/keys/{id}  revoke; 204
//
// An admin key cannot see or revoke another log's keys (404).

func (s *server) createKey(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return err
	}
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
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
	secret, info, err := s.db.CreateKey(r.Context(), l.Name(), req.Name, scopes...)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: err.Error(), field: "name"}
	}
	return writeJSON(w, http.StatusCreated, struct {
		Key string `json:"key"`
		trail.KeyInfo
	}{secret, info})
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	all, err := s.db.Keys(r.Context())
	if err != nil {
		return err
	}
	out := []trail.KeyInfo{}
	for _, k := range all {
		if k.Log == l.Name() {
			out = append(out, k)
		}
	}
	return writeJSON(w, http.StatusOK, struct {
		Keys []trail.KeyInfo `json:"keys"`
	}{out})
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	id := r.PathValue("id")
	all, err := s.db.Keys(r.Context())
	if err != nil {
		return err
	}
	for _, k := range all {
		if k.ID == id && k.Log == l.Name() {
			if err := s.db.RevokeKey(r.Context(), id); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return errNotFound // another log's key is not found, not forbidden
}
