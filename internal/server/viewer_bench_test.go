package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/internal/browsertest"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/workload"
)

// BenchmarkViewer1M measures the viewer's pages on a log of the first
// 1,000,000 workload events, signed in like a browser: the server's time to
// answer each page (over a real listener), and, in headless Chromium, the
// time from navigation until the page is shown with its script done.
func BenchmarkViewer1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1M-event log")
	}
	evs, _, err := workload.Events(1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	workload.LogSource(b)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trail-viewer-1m-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := db.CreateLog(ctx, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(evs); off += 1000 {
		if _, err := l.AppendBatch(ctx, evs[off:off+1000]); err != nil {
			b.Fatal(err)
		}
	}
	evs = nil
	if err := l.WaitIndexed(ctx); err != nil {
		b.Fatal(err)
	}
	key, _, err := db.CreateKey(ctx, testAdmin, "bench", "viewer", trail.ScopeRead)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(server.New(db, server.Options{RateLimit: -1}))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.PostForm(srv.URL+"/signin", url.Values{"key": {key}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign in: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	last, err := l.GetSeq(ctx, l.Size()-1)
	if err != nil {
		b.Fatal(err)
	}
	// The workload's events happened on 2026-01-01 and 02.
	pages := []struct{ name, path string }{
		{"events", "/"},
		{"events-failed-logins", "/?action=user.login.failed&outcome=failure"},
		{"events-prefix-text", "/?action=user.*&q=invalid_credentials"},
		{"event", "/events/" + last.ID},
		{"overview-all", "/overview?range=all"},
	}
	for _, p := range pages {
		b.Run("server/"+p.name, func(b *testing.B) {
			for b.Loop() {
				resp, err := hc.Get(srv.URL + p.path)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "</main>") {
					b.Fatalf("GET %s = %s", p.path, resp.Status)
				}
			}
		})
	}
	b.Run("server/stats-hourly", func(b *testing.B) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/stats?since=2026-01-01T00:00:00Z&until=2026-01-03T00:00:00Z&bucket=hour", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		for b.Loop() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("GET /v1/stats: %v %v", resp.Status, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})

	// The same pages in a real browser, until shown and the script is done
	// (for an event: until its proof is checked).
	bctx := browsertest.New(b, 10*time.Minute)
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/signin"), chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#rows"))); err != nil {
		b.Fatal(err)
	}
	for _, p := range pages {
		b.Run("browser/"+p.name, func(b *testing.B) {
			for b.Loop() {
				if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+p.path)); err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					ready, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.dataset.ready === "true"`))
					if err == nil && ready {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%s: not ready after 10 s (%v)", p.path, err)
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
}
