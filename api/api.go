// Package api holds the OpenAPI 3.1 description of Trail's HTTP API
// (openapi.json), embedded so that the server can serve it.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document, JSON.
//
//go:embed openapi.json
var OpenAPI []byte
