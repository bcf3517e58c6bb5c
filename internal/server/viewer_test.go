package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/server"
	"github.com/trail-audit/trail/internal/web"
)

// viewerEnv is a TLS server with a log "acme" of a few events, a read key
// and an append-only key.
type viewerEnv struct {
	t                *testing.T
	db               *trail.DB
	loc              string // where the store is: a data directory, or a URL
	srv              *httptest.Server
	read, appendOnly string
	readID           string
	eventID          string
}

func newViewerEnv(t *testing.T) *viewerEnv {
	t.Helper()
	return newViewerEnvAt(t, t.TempDir())
}

// newViewerEnvAt is newViewerEnv with the store created at loc, a data
// directory or a location a backends.Backend gave (see initAt).
func newViewerEnvAt(t *testing.T, loc string) *viewerEnv {
	t.Helper()
	ctx := context.Background()
	db, err := initAt(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	v := &viewerEnv{t: t, db: db, loc: loc}
	var ki trail.KeyInfo
	if v.read, ki, err = db.CreateKey(ctx, testAdmin, "acme", "auditor", trail.ScopeRead); err != nil {
		t.Fatal(err)
	}
	v.readID = ki.ID
	if v.appendOnly, _, err = db.CreateKey(ctx, testAdmin, "acme", "app", trail.ScopeAppend); err != nil {
		t.Fatal(err)
	}
	l, err := db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := l.AppendBatch(ctx, []event.Event{
		{Actor: event.Actor{ID: "u1", Role: "admin"}, Action: "user.login", Source: event.Source{IP: "192.0.2.1"}},
		{Actor: event.Actor{ID: "anonymous"}, Action: "user.login.failed", Outcome: event.Failure, Reason: "bad password", Source: event.Source{IP: "203.0.113.9"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v.eventID = rs[1].ID
	v.srv = httptest.NewTLSServer(server.New(db, server.Options{}))
	t.Cleanup(v.srv.Close)
	return v
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that they can be checked.
func (v *viewerEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *v.srv.Client() // a browser of its own: srv.Client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (v *viewerEnv) signIn(c *http.Client, key, next, origin string) *http.Response {
	v.t.Helper()
	req, _ := http.NewRequest("POST", v.srv.URL+"/signin", strings.NewReader(url.Values{"key": {key}, "next": {next}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ref, ok := strings.CutPrefix(origin, "referer:"); ok {
		req.Header.Set("Referer", ref) // a browser that sends no Origin
	} else {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func (v *viewerEnv) get(c *http.Client, path string) (*http.Response, string) {
	v.t.Helper()
	resp, err := c.Get(v.srv.URL + path)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestViewerSignIn(t *testing.T) {
	v := newViewerEnv(t)
	c := v.browser()

	if resp, body := v.get(c, "/static/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /static/ = %s %q, want 404, not a listing", resp.Status, body)
	}
	resp, _ := v.get(c, "/overview?range=7d")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?next=%2Foverview%3Frange%3D7d" {
		t.Fatalf("not signed in, /overview = %s → %q; want 303 to the sign-in page", resp.Status, resp.Header.Get("Location"))
	}

	// Refused sign-ins start no session.
	for _, tc := range []struct {
		name, key, origin string
		status            int
	}{
		{"wrong key", "trail_0123456789abcdef_00", v.srv.URL, http.StatusUnauthorized},
		{"append-only key", v.appendOnly, v.srv.URL, http.StatusForbidden},
		{"another site's form", v.read, "https://evil.example", http.StatusForbidden},
		{"an opaque origin (a sandboxed frame)", v.read, "null", http.StatusForbidden},
		{"another site's page, said only in Referer", v.read, "referer:https://evil.example/page", http.StatusForbidden},
		{"a form over 16 KiB", v.read + strings.Repeat(" ", 17<<10), v.srv.URL, http.StatusRequestEntityTooLarge},
	} {
		resp := v.signIn(c, tc.key, "/", tc.origin)
		if resp.StatusCode != tc.status || len(resp.Cookies()) > 0 {
			t.Errorf("%s: sign-in = %s with cookies %v; want %d and none", tc.name, resp.Status, resp.Cookies(), tc.status)
		}
	}
	// The append-only key's attempt is recorded in its log, denied.
	if acme, err := v.db.Log(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	} else if p, err := acme.Search(context.Background(), api.Query{Action: trail.ActionAccess}); err != nil || len(p.Events) != 1 ||
		p.Events[0].Outcome != event.Denied || p.Events[0].Targets[0].ID != "POST /signin" {
		t.Errorf("after a sign-in with an append-only key, %s events = %+v, %v; want one, denied, of POST /signin", trail.ActionAccess, p.Events, err)
	}

	// A good key: a session cookie scripts cannot read, that other sites
	// do not send, only over TLS, expiring; back to a local page only.
	resp = v.signIn(c, v.read, "//evil.example/x", v.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("sign-in with next=//evil.example = %s → %q; want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	if resp := v.signIn(v.browser(), v.read, "/\t/evil.example", v.srv.URL); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("sign-in with next=/<TAB>/evil.example = %s → %q; want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	if resp := v.signIn(v.browser(), v.read, "/", "referer:"+v.srv.URL+"/signin"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in from this site's page, said only in Referer = %s, want 303", resp.Status)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("sign-in set cookies %v", cookies)
	}
	ck := cookies[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || !ck.Secure || ck.MaxAge != 8*3600 || ck.Path != "/" {
		t.Errorf("session cookie %+v; want HttpOnly, SameSite=Strict, Secure under TLS, Max-Age 8h, Path /", ck)
	}
	if strings.Contains(ck.Value, strings.Split(v.read, "_")[2]) {
		t.Error("the session cookie carries the key")
	}

	// Signed in: pages with a strict policy and no inline script or style.
	for _, path := range []string{"/", "/?outcome=failure&ip=203.0.113.9", "/events/" + v.eventID, "/overview", "/overview?range=all"} {
		resp, body := v.get(c, path)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %s: %s", path, resp.Status, body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("GET %s: headers %v", path, resp.Header)
		}
		checkSelfContained(t, path, body)
	}
	if _, body := v.get(c, "/?outcome=failure"); !strings.Contains(body, "bad password") || strings.Contains(body, `data-seq="0"`) {
		t.Errorf("the failure filter shows the wrong rows")
	}

	// The session reads the API (GET), never writes it.
	if resp, _ := v.get(c, "/v1/events?limit=1"); resp.StatusCode != 200 {
		t.Errorf("GET /v1/events with the session = %s", resp.Status)
	}
	post, _ := http.NewRequest("POST", v.srv.URL+"/v1/events", strings.NewReader(`{"actor":{"id":"x"},"action":"a.b"}`))
	post.Header.Set("Content-Type", "application/json")
	if resp, err := c.Do(post); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /v1/events with only the session = %v %v; want 401", resp.Status, err)
	}

	// Reading in the viewer is audited like the API: sign-in, searches, gets.
	l, _ := v.db.Log(context.Background(), "acme")
	seen := map[string]bool{}
	for e, err := range l.Events(context.Background(), api.Query{Action: "trail.*"}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Actor.ID == v.readID {
			seen[e.Action] = true
		}
	}
	for _, a := range []string{"trail.signin", "trail.search", "trail.get", "trail.stats"} {
		if !seen[a] {
			t.Errorf("no %s event recorded for the viewer's reads (have %v)", a, seen)
		}
	}

	// Signing out ends the session on the server, not only in the browser.
	old := ck.Value
	req, _ := http.NewRequest("POST", v.srv.URL+"/signout", nil)
	req.Header.Set("Origin", v.srv.URL)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out = %v %v", resp.Status, err)
	}
	replay, _ := http.NewRequest("GET", v.srv.URL+"/", nil)
	replay.AddCookie(&http.Cookie{Name: "trail_session", Value: old})
	if resp, err := v.browser().Do(replay); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the signed-out session replayed = %v %v; want 303 to sign in", resp.Status, err)
	}

	// Revoking the key ends its sessions.
	c2 := v.browser()
	v.signIn(c2, v.read, "/", v.srv.URL)
	if resp, _ := v.get(c2, "/"); resp.StatusCode != 200 {
		t.Fatalf("second session: %s", resp.Status)
	}
	if err := v.db.RevokeKey(context.Background(), testAdmin, v.readID); err != nil {
		t.Fatal(err)
	}
	resp, _ = v.get(c2, "/")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "revoked") {
		t.Errorf("after revoking the key, / = %s → %q; want 303 to sign in, saying why", resp.Status, loc)
	}
	if resp, _ := v.get(c2, "/rows"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after revoking the key, the rows fragment = %s; want 401", resp.Status)
	}
}

var (
	errorParagraph = regexp.MustCompile(`<p class="error" role="alert">([^<]*)</p>`)
	inlineScript   = regexp.MustCompile(`(?i)<script\b[^>]*>\s*[^<\s]`)
	scriptTag      = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	styleAttr      = regexp.MustCompile(`(?i)<[^>]+\sstyle\s*=`)
	handlerAttr    = regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	otherHost      = regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?(https?:)?//`)
)

// checkSelfContained fails if a page has inline script or style, event
// handler attributes, or loads anything from another host: the CSP would
// block them, and the viewer must work offline.
func checkSelfContained(t *testing.T, name, html string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(html, -1) {
		if !strings.Contains(tag, `src="/static/`) {
			t.Errorf("%s: script not from /static/: %s", name, tag)
		}
	}
	for _, re := range []*regexp.Regexp{inlineScript, styleAttr, handlerAttr, otherHost} {
		if m := re.FindString(html); m != "" {
			t.Errorf("%s: %q breaks the content security policy or loads from another host", name, m)
		}
	}
}

// The viewer's own files load nothing from other hosts either.
func TestViewerAssetsSelfContained(t *testing.T) {
	remote := regexp.MustCompile(`(?i)(import\s[^;]*from\s*["']https?:|import\(\s*["']https?:|url\(\s*["']?https?:|fetch\(\s*["']https?:|@import)`)
	n := 0
	err := fs.WalkDir(web.Static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Static, path)
		if err != nil {
			return err
		}
		n++
		if m := remote.FindString(string(b)); m != "" {
			t.Errorf("%s loads from another host: %q", path, m)
		}
		return nil
	})
	if err != nil || n < 4 {
		t.Fatalf("walked %d static files: %v", n, err)
	}
}

// Odd and hostile viewer URLs get a page or a clear error, never a 5xx,
// and filters that cannot be used are named.
func TestViewerBadInput(t *testing.T) {
	v := newViewerEnv(t)
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)
	for _, tc := range []struct {
		path   string
		status int
		says   string
	}{
		{"/?range=fortnight", 200, "range"},
		{"/?range=custom&since=yesterday", 200, "since"},
		{"/?range=custom&until=2026-13-45T99:00", 200, "until"},
		{"/?ip=300.1.2.3", 200, "ip"},
		{"/?outcome=maybe", 200, "outcome"},
		{"/?action=User%20Login", 200, "action"},
		{"/?target=%3A%3A%3A", 200, ""},
		{"/?cursor=not-a-cursor", 200, "cursor"},
		{"/?q=%00%FF%FE", 200, ""},
		{"/?actor=" + strings.Repeat("a", 5000), 200, ""},
		{"/events/not-an-id", 404, "no such event"},
		{"/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "no such event"},
		{"/overview?range=forever", 400, "range"},
		{"/rows?cursor=zzz", 400, "cursor"},
		{"/rows?bogus=1", 400, "bogus"},
		{"/live?from=-5", 400, "from"},
		{"/live?limit=3", 400, "limit"},
		{"/live?cursor=abc", 400, "cursor"},
		{"/live?outcome=x", 400, "outcome"},
		{"/live?action=*", 400, "action"}, // before the stream starts, as /v1/tail
		{"/signin?next=javascript:alert(1)", 303, ""},
	} {
		resp, body := v.get(c, tc.path)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d; %.300s", tc.path, resp.StatusCode, tc.status, body)
			continue
		}
		msg := body
		if resp.StatusCode == 200 {
			// The page's error paragraph, not its labels, must name it.
			m := errorParagraph.FindStringSubmatch(body)
			if m == nil {
				if tc.says != "" {
					t.Errorf("GET %s shows no error", tc.path)
				}
				continue
			}
			msg = m[1]
		}
		if tc.says != "" && !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.says)) {
			t.Errorf("GET %s says %.300q, want it to name %q", tc.path, msg, tc.says)
		}
	}
}

// actionCells are the actions of the events table's rows in a page.
var actionCells = regexp.MustCompile(`<td class="action"><a href="[^"]*">([^<]+)</a>`)

func rowActions(body string) []string {
	var out []string
	for _, m := range actionCells.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// topValues are the values (actor ids, actions) of an overview top list,
// by its table id, from the links to their events.
func topValues(body, id string) []string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return nil
	}
	table := body[i:]
	table = table[:strings.Index(table, "</table>")]
	var out []string
	for _, m := range regexp.MustCompile(`<tr><td><a href="/\?(?:actor|action)=([^"&]+)`).FindAllStringSubmatch(table, -1) {
		v, _ := url.QueryUnescape(m[1])
		out = append(out, v)
	}
	return out
}

// readActions are the actions the server records for reads of a log.
var readActions = []string{"trail.search", "trail.get", "trail.export", "trail.tail", "trail.stats", "trail.signin", "trail.key.list"}

func hasRead(values []string) bool {
	return slices.ContainsFunc(values, func(a string) bool { return slices.Contains(readActions, a) })
}

// liveActions reads the rows of a /live stream until it has n, and
// returns their actions.
func liveActions(t *testing.T, c *http.Client, url string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for len(got) < n && sc.Scan() {
		if m := actionCells.FindStringSubmatch(sc.Text()); m != nil && strings.HasPrefix(sc.Text(), "data: ") {
			got = append(got, m[1])
		}
	}
	return got
}

// Trail's own reads (trail.search, trail.signin, trail.key.list, …) are
// hidden from the events page, its more rows, live rows and export, and
// from the overview's counts and top lists, unless the page's switch
// (trail=show) or its action filter asks for them; the page says they are
// left out. Trail's key administration (trail.key.create and
// trail.key.revoke) is not a read: it shows, and counts, either way.
func TestViewerHidesReads(t *testing.T) {
	v := newViewerEnv(t)
	ctx := context.Background()
	// After the two app events: a key created and revoked, and the keys
	// listed, by test-admin.
	_, old, err := v.db.CreateKey(ctx, testAdmin, "acme", "old", trail.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.db.RevokeKey(ctx, testAdmin, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.db.ListKeys(ctx, testAdmin, "acme"); err != nil {
		t.Fatal(err)
	}
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)
	for range 3 {
		v.get(c, "/") // trail.search
	}
	l, _ := v.db.Log(ctx, "acme")
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	// Newest first: the revocation, test-admin's three creations and the
	// two app events.
	const shown = "trail.key.revoke trail.key.create user.login.failed user.login trail.key.create trail.key.create"

	_, body := v.get(c, "/")
	body = html.UnescapeString(body)
	if got := strings.Join(rowActions(body), " "); got != shown {
		t.Errorf("the events page shows actions %v; want %v: no reads, the creation and revocation of keys", got, shown)
	}
	if !strings.Contains(body, `id="trail-hidden"`) || !strings.Contains(body, "excluding Trail's own reads") {
		t.Errorf("the events page does not say Trail's own reads are hidden")
	}
	if m := regexp.MustCompile(`<input type="checkbox" name="trail" value="show" id="show-trail" ([a-z]*)`).FindStringSubmatch(body); m == nil || m[1] == "checked" {
		t.Errorf("the events page has no unticked switch to show Trail's reads (%v)", m)
	}
	live := regexp.MustCompile(`id="live" data-url="([^"]*)"`).FindStringSubmatch(body)
	export := regexp.MustCompile(`href="(/v1/export\?[^"]*format=ndjson[^"]*)"`).FindStringSubmatch(body)
	if live == nil || export == nil {
		t.Fatalf("the events page has no live rows (%v) or no NDJSON export (%v)", live, export)
	}
	if got := liveActions(t, c, v.srv.URL+live[1]+"&from=0", 6); strings.Join(got, " ") != "trail.key.create trail.key.create user.login user.login.failed trail.key.create trail.key.revoke" {
		t.Errorf("the events page's live rows from the log's start are %v; want the 6 events that are not reads, oldest first", got)
	}
	_, ndjson := v.get(c, export[1])
	var exported []string
	for line := range strings.Lines(ndjson) {
		var e event.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("the events page's export: %v: %q", err, line)
		}
		exported = append(exported, e.Action)
	}
	if hasRead(exported) || len(exported) != 6 || !slices.Contains(exported, "trail.key.revoke") {
		t.Errorf("the events page's export holds %v; want the 6 events that are not reads", exported)
	}
	_, rows := v.get(c, "/rows?hide_reads=true")
	if got := strings.Join(rowActions(rows), " "); got != shown {
		t.Errorf("/rows?hide_reads=true shows %v; want %v", got, shown)
	}
	_, rows = v.get(c, "/rows?exclude_action=trail.*")
	if got := rowActions(rows); len(got) != 2 || slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "trail.") }) {
		t.Errorf("/rows?exclude_action=trail.* shows %v; want the 2 app events", got)
	}

	_, body = v.get(c, "/?trail=show")
	for _, a := range []string{"trail.signin", "trail.search", "trail.key.list", "trail.key.create", "trail.key.revoke"} {
		if got := rowActions(body); !slices.Contains(got, a) {
			t.Errorf("with trail=show the events page shows %v; want %s among them", got, a)
		}
	}
	if !strings.Contains(body, `id="show-trail" checked`) || strings.Contains(body, `id="trail-hidden"`) {
		t.Errorf("with trail=show the switch is not ticked, or the page still says they are hidden")
	}
	_, body = v.get(c, "/?action=trail.*")
	if got := rowActions(body); !slices.Contains(got, "trail.search") || !slices.Contains(got, "trail.key.create") {
		t.Errorf("action=trail.* shows %v; an action filter naming Trail's actions shows them all", got)
	}

	// The overview: counts, chart and top lists without the reads, with
	// the key administration, and says so.
	_, body = v.get(c, "/overview")
	body = html.UnescapeString(body)
	if got := topValues(body, "top-actions"); strings.Join(got, " ") != "trail.key.create trail.key.revoke user.login user.login.failed" {
		t.Errorf("the overview's top actions are %v; want the creation and revocation of keys and the 2 app actions, no reads", got)
	}
	if got := topValues(body, "top-actors"); slices.Contains(got, v.readID) || len(got) != 3 || got[0] != testAdmin.Actor.ID {
		t.Errorf("the overview's top actors are %v; want test-admin first, for its key administration, and the app's 2, not the key %s", got, v.readID)
	}
	if !strings.Contains(body, "<strong>6</strong> events <span class=\"excluding\">(excluding Trail's own reads)</span>") {
		t.Errorf("the overview's total is not the 2 app events and the 4 of key administration, labelled as excluding Trail's reads:\n%s", body[strings.Index(body, `id="totals"`):][:300])
	}
	_, body = v.get(c, "/overview?trail=show&range=7d")
	body = html.UnescapeString(body)
	if got := topValues(body, "top-actions"); !slices.Contains(got, "trail.search") || !slices.Contains(got, "trail.key.create") {
		t.Errorf("with trail=show the overview's top actions are %v; want trail.search and trail.key.create among them", got)
	}
	if got := topValues(body, "top-actors"); !slices.Contains(got, v.readID) {
		t.Errorf("with trail=show the overview's top actors are %v; want the key %s", got, v.readID)
	}
	if strings.Contains(body, "excluding Trail") || !strings.Contains(body, `href="/overview?range=24h&trail=show"`) {
		t.Errorf("with trail=show the overview still says it excludes Trail's reads, or its ranges drop trail=show")
	}

	// The API: hide_reads on /v1/events and /v1/stats.
	_, body = v.get(c, "/v1/events?hide_reads=true")
	var page struct{ Events []event.Event }
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Events {
		got = append(got, e.Action)
	}
	if strings.Join(got, " ") != shown {
		t.Errorf("GET /v1/events?hide_reads=true = %v, want %v", got, shown)
	}
	_, body = v.get(c, "/v1/stats?hide_reads=true")
	var st api.Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Total != 6 {
		t.Errorf("GET /v1/stats?hide_reads=true counts %d events (%v), want 6", st.Total, err)
	}
	for _, path := range []string{"/v1/events?hide_reads=yes", "/v1/stats?hide_reads=1"} {
		if resp, body := v.get(c, path); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"field":"hide_reads"`) {
			t.Errorf("GET %s = %s %s, want 400 naming hide_reads", path, resp.Status, body)
		}
	}
}

// A restart keeps the sessions (the store keeps their secret). Once the
// store's session secret is replaced, a browser with an old cookie is sent
// to sign in, told that its session ended, and the stale cookie is
// cleared.
func TestViewerSessionEnded(t *testing.T) {
	v := newViewerEnv(t)
	resp := v.signIn(v.browser(), v.read, "/", v.srv.URL)
	if len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in set cookies %v", resp.Cookies())
	}
	old := resp.Cookies()[0]
	again := httptest.NewTLSServer(server.New(v.db, server.Options{}))
	defer again.Close()
	req, _ := http.NewRequest("GET", again.URL+"/overview", nil)
	req.AddCookie(&http.Cookie{Name: old.Name, Value: old.Value})
	if resp, err := again.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/overview after a restart with the session's cookie = %v, %v; want 200", resp.Status, err)
	}
	if err := os.Remove(filepath.Join(v.db.Dir(), "session.key")); err != nil {
		t.Fatal(err)
	}
	restarted := httptest.NewTLSServer(server.New(v.db, server.Options{}))
	defer restarted.Close()
	c := restarted.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string, cookie bool) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", restarted.URL+path, nil)
		if cookie {
			req.AddCookie(&http.Cookie{Name: old.Name, Value: old.Value})
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const ended = "Your session ended (it expired or was signed out, or its key was revoked); sign in again."
	resp, _ = get("/overview", true)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin?") {
		t.Fatalf("a stale session's /overview = %s → %q; want 303 to sign in", resp.Status, loc)
	}
	for _, path := range []string{loc, "/signin", "/signin?next=%2F"} {
		resp, body := get(path, true)
		m := errorParagraph.FindStringSubmatch(strings.ReplaceAll(body, ` id="signin-error"`, ""))
		if resp.StatusCode != 200 || m == nil || html.UnescapeString(m[1]) != ended {
			t.Errorf("GET %s with a stale session cookie = %s, saying %q; want the sign-in page saying %q", path, resp.Status, m, ended)
		}
		cleared := false
		for _, ck := range resp.Cookies() {
			cleared = cleared || ck.Name == old.Name && ck.MaxAge < 0
		}
		if !cleared {
			t.Errorf("GET %s with a stale session cookie does not clear it (cookies %v)", path, resp.Cookies())
		}
	}
	// Without a cookie, a plain sign-in page; and the page says only what
	// the server words, not what a link puts in its URL.
	for _, path := range []string{"/signin", "/signin?why=Your+key+leaked%2C+call+555-0100"} {
		if _, body := get(path, false); errorParagraph.MatchString(strings.ReplaceAll(body, ` id="signin-error"`, "")) {
			t.Errorf("GET %s without a session cookie shows a message: %s", path, errorParagraph.FindString(strings.ReplaceAll(body, ` id="signin-error"`, "")))
		}
	}
}

// TestViewerErrorPageHeaders: a page refused before its handler ran (a
// query that does not parse) is sent with the headers of every page.
func TestViewerErrorPageHeaders(t *testing.T) {
	v := newViewerEnv(t)
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)
	for _, path := range []string{"/?actor=a;b", "/overview?range=%zz", "/events/x?a;b"} {
		resp, _ := v.get(c, path)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", path, resp.StatusCode)
		}
		for name, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, name, got, want)
			}
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy = %q", path, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// A bidirectional override in an event's fields shows as its escape in
// the events table and on the event's page, so that a value cannot read
// as another, while the links and the bytes the page verifies keep it.
func TestViewerShowsBidiControls(t *testing.T) {
	v := newViewerEnv(t)
	ctx := context.Background()
	l, err := v.db.Log(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Append(ctx, event.Event{Actor: event.Actor{ID: "u\u202egnp.exe"}, Action: "file.upload", Reason: "ok\u2067"})
	if err != nil {
		t.Fatal(err)
	}
	c := v.browser()
	v.signIn(c, v.read, "/", v.srv.URL)
	for _, path := range []string{"/?action=file.upload", "/events/" + r.ID} {
		_, body := v.get(c, path)
		text := html.UnescapeString(body)
		if !strings.Contains(text, `u\u202egnp.exe`) || !strings.Contains(text, `ok\u2067`) {
			t.Errorf("GET %s does not show the overrides as escapes:\n%s", path, body)
		}
		if strings.ContainsAny(text, "\u202e\u2067") && !strings.Contains(path, "/events/") {
			t.Errorf("GET %s holds a raw bidirectional control", path)
		}
	}
	_, body := v.get(c, "/?action=file.upload")
	if !strings.Contains(body, "actor=u%e2%80%aegnp.exe") {
		t.Errorf("the actor's link does not keep the id as stored:\n%s", body)
	}
}
