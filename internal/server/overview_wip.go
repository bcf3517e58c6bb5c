//go:build !stats

package server

import (
	"context"
	"net/http"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/web"
)

func (s *server) overviewPage(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	return trail.ErrNotFound
}

func (s *server) actionOptions(ctx context.Context, l *trail.Log) []web.Option { return nil }
