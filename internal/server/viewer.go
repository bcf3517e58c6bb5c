package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/canon"
	"github.com/trail-audit/trail/internal/web"
)

// The viewer: the pages at / where admins and auditors read the log in a
// browser. They sign in once with a read key (session.go); each page reads
// through the same library calls as the API, and is audited the same way.
//
//	GET  /signin, POST /signin, POST /signout
//	GET  /                 events, filtered by the query (the URL is the view)
//	GET  /rows             more rows of the events table, as HTML (load more)
//	GET  /live             new rows of the events table, as Server-Sent Events
//	GET  /events/{id}      one event, verified in the browser (static/verify.js)
//	GET  /overview         counts over time, top actors and actions, failing IPs
//	GET  /static/...       the embedded style and scripts

// pageRows is how many events a page of the events table shows.
const pageRows = 100

// contentSecurityPolicy lets the viewer load only its own scripts, styles
// and connections: no inline script or style, no other host, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *server) viewerRoutes(mux *http.ServeMux) {
	static, err := fs.Sub(web.Static, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			s.writeError(w, r, errNotFound) // no listing of the files
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /signin", s.pageHeaders(s.signInPage))
	mux.Handle("POST /signin", s.pageHeaders(s.signIn))
	mux.Handle("POST /signout", s.pageHeaders(s.signOut))
	mux.Handle("GET /{$}", s.viewer(s.eventsPage))
	mux.Handle("GET /rows", s.viewer(s.eventRows))
	mux.Handle("GET /live", s.viewer(s.liveRows))
	mux.Handle("GET /events/{id}", s.viewer(s.detailPage))
	mux.Handle("GET /overview", s.viewer(s.overviewPage))
}

// pageHeaders sets the headers every viewer response carries.
func (s *server) pageHeaders(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		h(w, r)
	})
}

// setPageHeaders sets the headers every page of the viewer is sent with.
func setPageHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
}

// viewer runs h for a signed-in browser: the session's key is
// authenticated again (so a revoked key ends the session at once), rate
// limited and must grant read. Without a live session, pages send the
// browser to sign in, and fragments (rows, live) answer 401.
func (s *server) viewer(h apiHandler) http.Handler {
	return s.pageHeaders(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		key, err := s.sessionKey(r)
		switch {
		case errors.Is(err, errNoSession):
			s.toSignIn(w, r, "")
			return
		case errors.Is(err, trail.ErrUnauthorized):
			s.toSignIn(w, r, "revoked")
			return
		case err != nil:
			s.viewerError(w, r, err)
			return
		case !key.Allows(trail.ScopeRead):
			s.toSignIn(w, r, "no-read")
			return
		}
		if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
			info.keyID, info.log = key.ID, key.Log
		}
		if s.limiter != nil {
			if ok, wait := s.limiter.allow(key.ID, time.Now()); !ok {
				w.Header().Set("Retry-After", retryAfter(wait))
				s.viewerError(w, r, errRateLimited)
				return
			}
		}
		l, err := s.db.Log(ctx, key.Log)
		if err == nil {
			err = h(w, r, key, l)
		}
		if err != nil {
			s.viewerError(w, r, err)
		}
	})
}

// isFragment reports whether r asks for part of a page (fetched by the
// page's script), not a page.
func isFragment(r *http.Request) bool {
	return r.URL.Path == "/rows" || r.URL.Path == "/live"
}

// toSignIn sends a page request to the sign-in page, to come back after,
// saying why (a key of signInReasons; without one, the sign-in page tells a
// browser still holding a session cookie that its session ended); a
// fragment request gets 401 for the page's script to report.
func (s *server) toSignIn(w http.ResponseWriter, r *http.Request, why string) {
	if isFragment(r) {
		s.writeError(w, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "the session has ended: sign in again"})
		return
	}
	v := url.Values{"next": {r.URL.RequestURI()}}
	if why != "" {
		v.Set("why", why)
	}
	http.Redirect(w, r, "/signin?"+v.Encode(), http.StatusSeeOther)
}

// viewerError shows err: as a page, or for fragments as the API's JSON.
func (s *server) viewerError(w http.ResponseWriter, r *http.Request, err error) {
	if isFragment(r) {
		s.writeError(w, r, err)
		return
	}
	status, body := s.classify(r, err)
	msg := body.Error.Message
	switch status {
	case http.StatusNotFound:
		msg = "There is no such event in this log."
	case http.StatusServiceUnavailable:
		msg = "The store is unavailable. Try again in a moment; if it persists, check the server's log."
	case http.StatusTooManyRequests:
		msg = "Too many requests with this key. Wait a moment and reload."
	}
	if de := (*trail.DamagedError)(nil); errors.As(err, &de) {
		msg = "The stored event at seq " + strconv.FormatInt(de.Seq, 10) + " is damaged: " + de.Problem +
			". The database was changed outside Trail, or damaged: run trail verify on the server's data directory to see what is wrong."
	}
	setPageHeaders(w.Header()) // also for a page refused before its handler ran
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	web.Render(w, "error", struct {
		web.Base
		Status  int
		Message string
	}{web.Base{}, status, msg})
}

// sameOrigin reports whether a form post comes from this site's own pages
// (a check on top of the SameSite=Strict cookie).
func sameOrigin(r *http.Request) bool {
	o, site := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	switch o {
	case "":
		// Not sent by a browser's form (curl, a script), or by one
		// that says where the form came from; an older browser may say
		// it only in Referer, which must then be this site.
		if ref := r.Header.Get("Referer"); ref != "" {
			if u, err := url.Parse(ref); err != nil || u.Host != r.Host {
				return false
			}
		}
		return site == "" || site == "same-origin"
	case "null":
		// An opaque origin: a sandboxed frame or a page of another
		// site's making can send it; only a browser that also says the
		// form is this site's own is believed.
		return site == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// signInPage serves GET /signin?next=&why=. A browser still holding the
// cookie of a session that is gone (it expired or was signed out, the key
// was revoked) is told so, and the cookie is cleared.
func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, err := s.sessionKey(r); err == nil {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	msg := signInReasons[r.URL.Query().Get("why")]
	if hasSessionCookie(r) {
		if msg == "" {
			msg = signInReasons["ended"]
		}
		setSessionCookie(w, r, "")
	}
	s.renderSignIn(w, http.StatusOK, r.URL.Query().Get("next"), msg)
}

func (s *server) renderSignIn(w http.ResponseWriter, status int, next, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	web.Render(w, "signin", web.SignIn{Next: localPath(next), Error: msg})
}

// localPath returns p if it is a path on this site, else "/": a sign-in
// link must not send the browser elsewhere.
func localPath(p string) string {
	// Browsers read a backslash as a slash and drop tabs and line breaks
	// from a URL, so "/\evil.example" and "/<TAB>/evil.example" are
	// another site's address; no control character has a place in a
	// local path.
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsFunc(p, func(r rune) bool {
		return r == '\\' || r < 0x20 || r == 0x7f
	}) {
		return "/"
	}
	return p
}

// signIn checks the pasted key and starts a session. The sign-in is
// recorded in the key's log as trail.signin.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !sameOrigin(r) {
		s.renderSignIn(w, http.StatusForbidden, "/", "This sign-in form was sent from another site.")
		return
	}
	if err := r.ParseForm(); err != nil {
		status, msg := http.StatusBadRequest, "This sign-in form could not be read."
		switch me := (*http.MaxBytesError)(nil); {
		case errors.As(err, &me):
			status, msg = http.StatusRequestEntityTooLarge, "This sign-in form is over 16 KiB: paste the API key alone."
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The form did not arrive within the server's read timeout,
			// past which its write deadline has passed too: the answer
			// gets a moment, as the API's 408 does.
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(5 * time.Second))
			w.Header().Set("Connection", "close")
			status, msg = http.StatusRequestTimeout, "This sign-in form did not arrive in time: send it again."
		}
		s.renderSignIn(w, status, "/", msg)
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("key"))
	next := r.PostFormValue("next")
	if secret == "" {
		s.renderSignIn(w, http.StatusBadRequest, next, "Paste an API key.")
		return
	}
	key, err := s.authenticate(r.Context(), secret)
	switch {
	case errors.Is(err, trail.ErrUnauthorized):
		s.renderSignIn(w, http.StatusUnauthorized, next, "That key is not valid, or it was revoked.")
		return
	case err != nil:
		s.viewerError(w, r, err)
		return
	case !key.Allows(trail.ScopeRead):
		s.recordDenied(r, key, "this key lacks the read scope the viewer needs")
		s.renderSignIn(w, http.StatusForbidden, next, "That key lacks the read scope. Create one with: trail keys create --log "+key.Log+" --scope read")
		return
	}
	l, err := s.db.Log(r.Context(), key.Log)
	if err == nil {
		err = s.auditRead(r, key, l, trail.ActionSignIn, nil)
	}
	if err != nil {
		s.viewerError(w, r, err)
		return
	}
	if err := s.startSession(w, r, key); err != nil {
		s.viewerError(w, r, err)
		return
	}
	http.Redirect(w, r, localPath(next), http.StatusSeeOther)
}

// signOut ends the session, on every server of the store (endSession),
// and clears its cookie. If the store cannot record the sign-out, the page
// says so: the cookie is cleared, but a copy of it would still work.
func (s *server) signOut(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.renderSignIn(w, http.StatusForbidden, "/", "This sign-out form was sent from another site.")
		return
	}
	err := s.endSession(r)
	setSessionCookie(w, r, "")
	if err != nil {
		s.viewerError(w, r, err)
		return
	}
	http.Redirect(w, r, "/signin?why=signed-out", http.StatusSeeOther)
}

// base is what every page says about the session.
func base(key trail.KeyInfo, nav string) web.Base {
	name := key.Name
	if name == "" {
		name = key.ID
	}
	return web.Base{Log: key.Log, KeyName: name, Nav: nav}
}

func renderPage(w http.ResponseWriter, name string, data any) error {
	var buf bytes.Buffer
	if err := web.Render(&buf, name, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := buf.WriteTo(w)
	return err
}

// viewerFilters reads the events page's filters from its URL.
func viewerFilters(r *http.Request) web.Filters {
	v := r.URL.Query()
	return web.Filters{
		Actor: v.Get("actor"), Action: v.Get("action"), Target: v.Get("target"),
		Outcome: v.Get("outcome"), IP: v.Get("ip"), Q: v.Get("q"),
		Range: v.Get("range"), Since: v.Get("since"), Until: v.Get("until"),
		ShowReads: v.Get("trail") == "show",
	}
}

// filterQuery turns the page's filters into a search; time presets count
// back from now.
func filterQuery(f web.Filters, now time.Time) (api.Query, error) {
	q := api.Query{Actor: f.Actor, Action: f.Action, Outcome: event.Outcome(f.Outcome), IP: f.IP, Text: f.Q}
	q.HideReads = f.HideReads()
	if f.Target != "" {
		q.TargetType, q.TargetID, _ = strings.Cut(f.Target, ":")
	}
	switch f.Range {
	case "":
	case "1h":
		q.Since = now.Add(-time.Hour)
	case "24h":
		q.Since = now.Add(-24 * time.Hour)
	case "7d":
		q.Since = now.Add(-7 * 24 * time.Hour)
	case "custom":
		for _, p := range []struct {
			name, val string
			dst       *time.Time
		}{{"since", f.Since, &q.Since}, {"until", f.Until, &q.Until}} {
			if p.val == "" {
				continue
			}
			t, err := parseFormTime(p.val)
			if err != nil {
				return q, badParam(p.name, "must be a time like 2026-03-01T12:00 or 2026-03-01T12:00:00Z")
			}
			*p.dst = t
		}
	default:
		return q, badParam("range", "must be 1h, 24h, 7d or custom")
	}
	return q, nil
}

// parseFormTime reads RFC 3339, or a datetime-local input's value taken as
// UTC (the page's script sends UTC; this is for browsers without script).
func parseFormTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

// apiParams are q's filters as GET /v1/events (and /rows, /live, export)
// parameters, with times absolute: no limit or cursor.
func apiParams(q api.Query) url.Values {
	q.Limit, q.Cursor = 0, ""
	return q.Values()
}

// eventsPage serves GET /: the events table, filtered, newest first.
func (s *server) eventsPage(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	ctx := r.Context()
	now := time.Now()
	p := web.Events{Base: base(key, "events"), F: viewerFilters(r), LogSize: l.Size()}
	p.Actions = s.actionOptions(ctx, l)
	// The read is recorded with the filters the page applies: it ignores
	// parameters it does not know, and takes the first of repeated ones.
	applied := pageParams(p.F)
	if c := r.URL.Query().Get("cursor"); c != "" {
		applied.Set("cursor", c)
	}
	q, err := filterQuery(p.F, now)
	if err == nil {
		q.Limit, q.Cursor = pageRows, r.URL.Query().Get("cursor")
		var page api.Page
		if page, err = l.Search(ctx, q); err == nil {
			if err := s.recordRead(r, key, l, trail.ActionSearch, nil, applied); err != nil {
				return err
			}
			for _, e := range page.Events {
				p.Rows = append(p.Rows, web.NewRow(e))
			}
			if page.NextCursor != "" {
				// Later pages keep the time window this one had.
				f := p.F
				if f.Range != "" && f.Range != "custom" {
					f.Range, f.Since, f.Until = "custom", q.Since.UTC().Format(time.RFC3339), ""
				}
				nv := pageParams(f)
				nv.Set("cursor", page.NextCursor)
				p.NextURL = "/?" + nv.Encode()
				rv := apiParams(q)
				rv.Set("cursor", page.NextCursor)
				p.RowsURL = "/rows?" + rv.Encode()
			}
		}
	}
	if err != nil {
		var ve *event.Error
		var ae *apiError
		if !errors.As(err, &ve) && !(errors.As(err, &ae) && ae.status == http.StatusBadRequest) {
			return err
		}
		p.Error = "Filter not applied: " + err.Error()
		// The page still shows the log's actions and their counts.
		if err := s.recordRead(r, key, l, trail.ActionStats, nil, applied); err != nil {
			return err
		}
	}
	if p.F.HideReads() {
		f := p.F
		f.ShowReads = true
		p.ShowReadsURL = "/?" + pageParams(f).Encode()
	}
	av := apiParams(q)
	av.Del("until") // live rows arrive after the page was made
	p.LiveURL = "/live?" + av.Encode()
	ev := apiParams(q)
	ev.Set("format", "csv")
	p.ExportCSV = "/v1/export?" + ev.Encode()
	ev.Set("format", "ndjson")
	p.ExportNDJSON = "/v1/export?" + ev.Encode()
	return renderPage(w, "events", p)
}

// pageParams are the events page's URL parameters for f.
func pageParams(f web.Filters) url.Values {
	v := url.Values{}
	if f.Range != "custom" {
		f.Since, f.Until = "", "" // taken only with a custom range
	}
	for name, val := range map[string]string{
		"actor": f.Actor, "action": f.Action, "target": f.Target, "outcome": f.Outcome,
		"ip": f.IP, "q": f.Q, "range": f.Range, "since": f.Since, "until": f.Until,
	} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if f.ShowReads {
		v.Set("trail", "show")
	}
	return v
}

// eventRows serves GET /rows?<API filters>&cursor=: the next page of the
// events table as table rows, the cursor after them in Trail-Next-Cursor.
func (s *server) eventRows(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	q, err := api.ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q.Limit = pageRows
	page, err := l.Search(r.Context(), q)
	if err != nil {
		return err
	}
	if err := s.recordRead(r, key, l, trail.ActionSearch, nil, q.Values()); err != nil { // as applied: the page's limit
		return err
	}
	var buf bytes.Buffer
	for _, e := range page.Events {
		if err := web.RenderPart(&buf, "row", web.NewRow(e)); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if page.NextCursor != "" {
		nv := r.URL.Query()
		nv.Set("cursor", page.NextCursor)
		w.Header().Set("Trail-Next-Rows", "/rows?"+nv.Encode())
	}
	buf.WriteTo(w)
	return nil
}

// liveRows serves GET /live?<API filters>&from=SEQ: Server-Sent Events
// whose data are table rows of the new matching events, from seq on.
func (s *server) liveRows(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	v := r.URL.Query()
	from := l.Size()
	if f := v.Get("from"); f != "" {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != f {
			return badParam("from", "must be a seq")
		}
		from = min(n, from)
	}
	if r.Header.Get("Last-Event-ID") != "" { // a reconnect
		var err error
		if from, err = resumeAt(r, l); err != nil {
			return err
		}
	}
	v.Del("from")
	q, err := api.ParseTail(v)
	if err != nil {
		return err
	}
	// A filter Search would refuse is a 400 now, not an error event once
	// the stream has begun, and no read is recorded for it.
	if err := trail.CheckQuery(q); err != nil {
		return err
	}
	if err := s.recordRead(r, key, l, trail.ActionTail, nil, tailParams(r)); err != nil {
		return err
	}
	var row bytes.Buffer
	s.stream(w, r, key, l, q, max(from, 0), func(buf []byte, e *event.Event) []byte {
		row.Reset()
		if web.RenderPart(&row, "row", web.NewRow(e)) != nil {
			return buf
		}
		buf = append(buf, "id: "...)
		buf = strconv.AppendInt(buf, e.Seq, 10)
		buf = append(buf, "\nevent: row\n"...)
		// A line of Server-Sent Events ends at CR too: the row's CRs,
		// which only event text holds, go as character references.
		html := strings.ReplaceAll(strings.TrimSpace(row.String()), "\r", "&#13;")
		for line := range strings.SplitSeq(html, "\n") {
			buf = append(buf, "data: "...)
			buf = append(buf, line...)
			buf = append(buf, '\n')
		}
		return append(buf, '\n')
	})
	return nil
}

// detailPage serves GET /events/{id}: every field, the raw JSON, and what
// the browser needs to check the event's inclusion proof itself.
func (s *server) detailPage(w http.ResponseWriter, r *http.Request, key trail.KeyInfo, l *trail.Log) error {
	e, proof, signed, err := s.provenEvent(r, key, l)
	if err != nil {
		var ve *event.Error
		if errors.As(err, &ve) { // not an event id: no such event
			return trail.ErrNotFound
		}
		return err
	}
	raw := canon.Append(nil, e)
	var pretty bytes.Buffer
	json.Indent(&pretty, raw, "", "  ")
	pj, err := json.Marshal(proof)
	if err != nil {
		return err
	}
	return renderPage(w, "detail", web.Detail{
		Base: base(key, "events"), Row: web.NewRow(e), Fields: web.EventFields(e),
		JSON: string(raw), Pretty: web.Shown(pretty.String()), Proof: string(pj),
		Checkpoint: string(signed), VerifierKey: l.VerifierKey(), WitnessPolicy: s.witnessPolicyText(l),
	})
}

// witnessPolicyText is the witness policy covering l, in tlog-policy
// syntax as GET /v1/witness-policy serves it, or "" when none does.
func (s *server) witnessPolicyText(l *trail.Log) string {
	if p := s.db.WitnessPolicy(); p != nil && l.Witnessed() {
		return p.String()
	}
	return ""
}
