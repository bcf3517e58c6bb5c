package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/internal/server"
)

// The OpenAPI document is served, and every operation it describes is a
// route of the server: nothing documented falls through to the catch-all
// 404, and keyed routes ask for a key.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, server.Options{})
	r := e.do("GET", "/v1/openapi.json", "", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, api.OpenAPI) {
		t.Fatalf("GET /v1/openapi.json = %d, %d bytes; want 200 and the embedded document", r.status, len(r.body))
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Security *[]any `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			n++
			p := strings.ReplaceAll(path, "{id}", "01M8ABR4DJ00000000G8NK7BC7")
			r := e.do(strings.ToUpper(method), p, "", "application/json", nil)
			public := op.Security != nil && len(*op.Security) == 0
			switch {
			case public && r.status >= 400 && r.status != http.StatusServiceUnavailable:
				t.Errorf("%s %s without a key = %d, want it served", method, path, r.status)
			case !public && r.status != http.StatusUnauthorized:
				t.Errorf("%s %s without a key = %d, want 401 (an undocumented route or a missing one?)", method, path, r.status)
			}
		}
	}
	if n < 9 {
		t.Errorf("the document describes %d operations, want at least 9", n)
	}
}
