// Package api is the wire contract of Trail's HTTP API: the JSON bodies
// that the server writes and reads and that clients send and receive, and
// the mapping between a search (Query, StatsQuery, Export) and its URL
// query parameters. The server, the Go client and the trail command all
// use these types, and the root package's library API uses Query, Page,
// Receipt and Stats directly.
//
// OpenAPI holds the published description of the API (openapi.json, an
// OpenAPI 3.1 document); a test checks that it documents exactly the fields
// and parameters of these types. Events themselves are package event's.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document, JSON.
//
//go:embed openapi.json
var OpenAPI []byte
