package client

import (
	"context"
	"io"
	"net/http"

	"github.com/trail-audit/trail/api"
)

// Export streams every event matching q, oldest first, as NDJSON
// (format "ndjson") or CSV ("csv"). The caller closes the reader.
func (c *Client) Export(ctx context.Context, q api.Query, format string) (io.ReadCloser, error) {
	q.Limit, q.Cursor = 0, ""
	u := *c.base
	u.Path += "/v1/export"
	u.RawQuery = api.Export{Query: q, Format: format}.Values().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}
