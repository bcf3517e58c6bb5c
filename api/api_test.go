package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOpenAPIDocument(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	// Every $ref points at a schema that exists.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name, ok := strings.CutPrefix(ref, "#/components/schemas/")
				if _, exists := schemas[name]; !ok || !exists {
					t.Errorf("dangling $ref %q", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	// The event's fields are the public contract.
	props := schemas["Event"].(map[string]any)["properties"].(map[string]any)
	for _, f := range []string{"id", "seq", "log", "received_at", "time", "actor", "action", "targets", "outcome", "reason", "source", "request_id", "trace_id", "changes", "metadata"} {
		if _, ok := props[f]; !ok {
			t.Errorf("Event schema lacks field %q", f)
		}
	}
}
