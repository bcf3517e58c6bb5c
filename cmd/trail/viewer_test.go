package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/internal/browsertest"
	"github.com/trail-audit/trail/internal/store/storetest/backends"
)

// browser drives one Chromium tab against a trail serve.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	// shots is where screenshots go.
	shots string
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

func evalAwait[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// open loads path and waits until sel is visible.
func (b *browser) open(path, sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("location.href + ' ' + document.body.innerText.slice(0, 600)"))
		b.t.Fatalf("opening %s and waiting for %s: %v; page: %s", path, sel, err, page)
	}
	b.waitFor("the page's script", `document.documentElement.dataset.ready === "true"`)
}

// waitFor waits until the JavaScript predicate holds on the current page,
// across navigations (which interrupt an evaluation: it is tried again).
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("location.href + ' ' + document.body.innerText.slice(0, 600)"))
	b.t.Fatalf("waiting for %s (%s): %v; page: %s", what, js, last, page)
}

// shot saves a screenshot of the window as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// signIn signs in with key from the sign-in page and waits for the events.
func (b *browser) signIn(key string) {
	b.t.Helper()
	b.open("/signin", "#key")
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Submit(chromedp.CSS("#key")))
	b.waitFor("the events page", `location.pathname === "/" && document.getElementById("filters") && document.documentElement.dataset.ready === "true"`)
}

// rowsJS collects the events table as [{seq, action, ip, actor, time, title}].
const rowsJS = `[...document.querySelectorAll("#rows tr")].map(r => ({
	seq: Number(r.dataset.seq), action: r.querySelector(".action").textContent.trim(),
	ip: r.querySelector(".ip").textContent.trim(), actor: r.querySelector(".actor").textContent.trim(),
	time: r.querySelector("time").textContent, datetime: r.querySelector("time").getAttribute("datetime"),
	title: r.querySelector("time").title}))`

// localField formats t as a datetime-local input holds it: the browser
// normalises a value to its shortest form, without ":00" seconds.
func localField(t time.Time) string {
	if t.Second() == 0 {
		return t.Format("2006-01-02T15:04")
	}
	return t.Format("2006-01-02T15:04:05")
}

type viewRow struct {
	Seq                                      int64
	Action, IP, Actor, Time, Datetime, Title string
}

// The viewer, in a real headless Chromium against a real trail serve --demo:
// sign in, the events table in the viewer's time zone, load more without
// gaps or repeats, filters held in the URL, an event verified in the
// browser and the failure once its row is altered in the database, the
// overview's charts, live rows, a phone-width screen, sign-out, another
// tenant seeing nothing of this one, revocation, and the server gone.
func TestViewer(t *testing.T) {
	backends.Run(t, testViewer)
}

func testViewer(t *testing.T, be backends.Backend) {
	loc := be.New(t)
	st := storeOn(t, be, loc)
	// On a backend other than SQLite only what the store bears on runs:
	// trail serve --demo on it, signing in, and an event's page once its
	// stored row is altered (detail). The rest is the same viewer over
	// the same API.
	part := func(t *testing.T) {
		if be.Name != backends.SQLite.Name {
			t.Skipf("the viewer's pages but an event's are checked on sqlite only")
		}
	}
	other := run(t, "", at(st, "keys", "create", "--log", "other", "--scope", "read,append", "--name", "other reader")...)
	if other.code != 0 {
		t.Fatalf("keys create: %+v", other)
	}
	otherKey := lastLine(other.stdout)
	if r := run(t, "", at(st, "--log", "other", "append", "--actor", "zed", "--action", "vault.open", "--ip", "192.0.2.99")...); r.code != 0 {
		t.Fatalf("append to other: %+v", r)
	}
	s := serveOn(t, st, "--demo")
	keys := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(Read|Append) key .*:\s+(trail_\S+)$`).FindAllStringSubmatch(s.banner, -1) {
		keys[m[1]] = m[2]
	}
	read, appd := keys["Read"], keys["Append"]
	if read == "" || appd == "" {
		t.Fatalf("serve --demo printed no keys:\n%s", s.banner)
	}

	shots := os.Getenv("TRAIL_ARTIFACTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "trail-viewer-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: browsertest.New(t, 3*time.Minute), base: s.url, shots: shots}
	// Times must show in the viewer's zone: make it one far from UTC.
	if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}

	// Not signed in: every page leads to the sign-in form.
	b.open("/overview", "#key")
	if path := eval[string](b, "location.pathname + location.search"); !strings.HasPrefix(path, "/signin?next=%2Foverview") {
		t.Errorf("not signed in, /overview went to %s; want the sign-in page, coming back after", path)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), "trail_0000000000000000_wrong"), chromedp.Submit(chromedp.CSS("#key")))
	b.waitFor("the sign-in error", `!!document.getElementById("signin-error")`)
	if msg := eval[string](b, `document.getElementById("signin-error").textContent`); !strings.Contains(msg, "not valid") {
		t.Errorf("a wrong key says %q", msg)
	}

	b.signIn(read)
	if got := eval[string](b, `document.getElementById("log-name").textContent`); got != "demo" {
		t.Errorf("signed in to log %q, want demo", got)
	}
	if c := eval[string](b, "document.cookie"); strings.Contains(c, "trail_session") {
		t.Errorf("the session cookie is readable by scripts: %q", c)
	}

	var rows []viewRow
	var demoEventPath string // an event of the demo log
	t.Run("events", func(t *testing.T) {
		part(t)
		b.t = t
		rows = eval[[]viewRow](b, rowsJS)
		if len(rows) != 100 {
			t.Fatalf("the events page shows %d rows, want 100", len(rows))
		}
		// Local time (Tokyo, UTC+9) with UTC on hover.
		utc, err := time.Parse(time.RFC3339Nano, rows[0].Datetime)
		if err != nil {
			t.Fatal(err)
		}
		if want := utc.In(time.FixedZone("JST", 9*3600)).Format("2006-01-02 15:04:05"); rows[0].Time != want {
			t.Errorf("first row shows %q for %s, want Tokyo time %q", rows[0].Time, rows[0].Datetime, want)
		}
		if !strings.Contains(rows[0].Title, rows[0].Datetime) || !strings.Contains(rows[0].Title, "UTC") {
			t.Errorf("hovering the time shows %q, want the UTC time", rows[0].Title)
		}
		// The time column names the zone its times are in.
		if h := eval[string](b, `document.getElementById("time-head")?.textContent.trim() || ""`); h != "Time (Asia/Tokyo)" {
			t.Errorf("the time column's header is %q, want %q", h, "Time (Asia/Tokyo)")
		}
		// Signing in and opening this page were recorded as trail.signin
		// and trail.search: the first page hides Trail's own reads, and
		// shows the creation of the demo's keys just before them.
		for _, r := range rows {
			if trail.IsReadAction(r.Action) {
				t.Fatalf("the events page shows Trail's own read %+v; want them hidden", r)
			}
		}
		if rows[0].Action != trail.ActionKeyCreate || rows[1].Action != trail.ActionKeyCreate {
			t.Errorf("the events page starts with %+v, %+v; want the creations of the demo's two keys", rows[0], rows[1])
		}
		if note := eval[string](b, `document.getElementById("trail-hidden")?.textContent || ""`); !strings.Contains(note, "excluding Trail's own reads") {
			t.Errorf("the events page says %q about Trail's reads; want that they are left out", note)
		}
		b.shot("events")

		// The switch shows them, and the URL keeps it.
		if !eval[bool](b, `!!document.getElementById("show-trail")`) {
			t.Fatal("the events page has no switch to show Trail's own reads")
		}
		b.do(chromedp.Click(chromedp.CSS("#show-trail")))
		b.waitFor("the page with Trail's reads", `location.search.includes("trail=show") && document.documentElement.dataset.ready === "true" && !!document.getElementById("rows")`)
		shown := eval[[]viewRow](b, rowsJS)
		if len(shown) == 0 || !slices.ContainsFunc(shown, func(r viewRow) bool { return r.Action == "trail.search" }) {
			t.Errorf("with the switch on, the events page shows no trail.search")
		}
		if !eval[bool](b, `document.getElementById("show-trail").checked`) {
			t.Errorf("after reload with trail=show, the switch is off")
		}
		b.do(chromedp.Click(chromedp.CSS("#show-trail")))
		b.waitFor("the page without Trail's reads", `!location.search.includes("trail=show") && document.documentElement.dataset.ready === "true" && !!document.getElementById("rows")`)
		b.open("/", "#rows")

		// Load more: the next 100, newest first, no gap and no repeat.
		b.do(chromedp.Click(chromedp.CSS("#more")))
		b.waitFor("200 rows", `document.querySelectorAll("#rows tr").length === 200`)
		rows = eval[[]viewRow](b, rowsJS)
		for i := 1; i < len(rows); i++ {
			if rows[i].Seq != rows[i-1].Seq-1 {
				t.Fatalf("after load more, row %d is seq %d after seq %d: want one less (no gaps, no repeats)", i, rows[i].Seq, rows[i-1].Seq)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		part(t)
		b.t = t
		b.do(
			chromedp.SetValue(chromedp.CSS(`#filters input[name="action"]`), "user.login.failed"),
			chromedp.SetValue(chromedp.CSS(`#filters input[name="ip"]`), "203.0.113.7"),
			chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)),
		)
		b.waitFor("the filtered page", `location.search.includes("ip=") && document.documentElement.dataset.ready === "true"`)
		b.do(chromedp.WaitVisible(chromedp.CSS("#rows")))
		search := eval[string](b, "location.search")
		if !strings.Contains(search, "action=user.login.failed") || !strings.Contains(search, "ip=203.0.113.7") || strings.Contains(search, "actor=") {
			t.Errorf("filtering put %q in the URL; want the action and ip filters only", search)
		}
		check := func(when string) []viewRow {
			got := eval[[]viewRow](b, rowsJS)
			if len(got) == 0 {
				t.Fatalf("%s: no failed logins from 203.0.113.7", when)
			}
			for _, r := range got {
				if r.Action != "user.login.failed" || r.IP != "203.0.113.7" {
					t.Fatalf("%s: row %+v does not match the filters", when, r)
				}
			}
			return got
		}
		first := check("filtered")
		// The URL is the view: reloading it shows the same rows and filters.
		b.open("/"+search, "#rows")
		again := check("reloaded")
		if len(again) != len(first) || again[len(again)-1].Seq != first[len(first)-1].Seq {
			t.Errorf("reloading the filtered URL shows %d rows, was %d", len(again), len(first))
		}
		if v := eval[string](b, `document.querySelector('#filters input[name="action"]').value`); v != "user.login.failed" {
			t.Errorf("after reload the action filter shows %q", v)
		}
		// The action list offers what the log holds, with prefixes.
		opts := eval[[]string](b, `[...document.querySelectorAll("#actions option")].map(o => o.value)`)
		if !contains(opts, "user.login.failed") || !contains(opts, "user.*") {
			t.Errorf("action suggestions %v lack user.login.failed or user.*", opts)
		}
		// A prefix filter matches every action under it.
		b.open("/?action=user.*", "#rows")
		for _, r := range eval[[]viewRow](b, rowsJS) {
			if !strings.HasPrefix(r.Action, "user.") {
				t.Fatalf("action=user.* shows %q", r.Action)
			}
		}
		// A custom range is typed in local time (Tokyo here) and held in
		// the URL in UTC, so a shared link means the same to everyone.
		jst := time.FixedZone("JST", 9*3600)
		from, to := time.Now().Add(-3*time.Hour).Truncate(time.Second), time.Now().Add(-150*time.Minute).Truncate(time.Second)
		b.open("/", "#rows")
		b.do(
			chromedp.SetValue(chromedp.CSS(`#range`), "custom"),
			chromedp.SetValue(chromedp.CSS(`#filters input[name="since"]`), localField(from.In(jst))),
			chromedp.SetValue(chromedp.CSS(`#filters input[name="until"]`), localField(to.In(jst))),
			chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)),
		)
		b.waitFor("the custom range", `location.search.includes("range=custom") && document.documentElement.dataset.ready === "true"`)
		q, err := url.ParseQuery(strings.TrimPrefix(eval[string](b, "location.search"), "?"))
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("since") != from.UTC().Format("2006-01-02T15:04:05.000Z") || q.Get("until") != to.UTC().Format("2006-01-02T15:04:05.000Z") {
			t.Errorf("custom range in the URL: since=%s until=%s; want %s and %s (UTC)", q.Get("since"), q.Get("until"), from.UTC(), to.UTC())
		}
		if got := eval[string](b, `document.querySelector('#filters input[name="since"]').value`); got != localField(from.In(jst)) {
			t.Errorf("after reload the From field shows %q, want the local time", got)
		}
		inRange := eval[[]viewRow](b, rowsJS)
		if len(inRange) == 0 || len(inRange) >= 100 {
			t.Errorf("half an hour of the demo's day shows %d rows; want some, fewer than a page", len(inRange))
		}
		for _, r := range inRange {
			// The range selects by received_at; the demo's events were
			// received within minutes of happening.
			at, _ := time.Parse(time.RFC3339Nano, r.Datetime)
			if at.Before(from.Add(-20*time.Minute)) || at.After(to) {
				t.Errorf("row %+v is outside the range %s to %s", r, from, to)
			}
		}

		// A bad filter says which and why, and shows nothing.
		b.open("/?ip=not-an-ip", "#filters")
		if msg := eval[string](b, `document.querySelector("main .error")?.textContent || ""`); !strings.Contains(msg, "ip") {
			t.Errorf("a bad ip filter says %q; want it named", msg)
		}
		// The export links carry the filters.
		b.open("/?action=user.login.failed&ip=203.0.113.7", "#rows")
		href := eval[string](b, `document.querySelector('.export a').href`)
		if !strings.Contains(href, "/v1/export?") || !strings.Contains(href, "format=csv") || !strings.Contains(href, "ip=203.0.113.7") {
			t.Errorf("CSV export link = %s", href)
		}
		if got := evalAwait[string](b, `fetch(document.querySelector('.export a').href).then(r => r.status + " " + r.headers.get("content-type"))`); !strings.HasPrefix(got, "200 text/csv") {
			t.Errorf("the CSV export, with the session = %s, want 200 text/csv", got)
		}
	})

	t.Run("placeholders", func(t *testing.T) {
		part(t)
		b.t = t
		b.open("/", "#filters")
		checkPlaceholders(b, "events page", true)
	})

	t.Run("detail", func(t *testing.T) {
		b.t = t
		// The newest failed login from 203.0.113.7: open it from the table.
		b.open("/?action=user.login.failed&ip=203.0.113.7", "#rows")
		b.do(chromedp.Click(chromedp.CSS(`#rows tr:first-child td.time a`)))
		b.waitFor("the event page, checked", `document.documentElement.dataset.ready === "true" && location.pathname.startsWith("/events/")`)
		verifierKey := eval[string](b, `document.getElementById("verify").dataset.verifierKey`)
		if code, body, err := request(t, "GET", s.url+"/v1/log", read, ""); err != nil || code != 200 || !strings.Contains(string(body), `"verifier_key":"`+verifierKey+`"`) {
			t.Errorf("the page checks against verifier key %q; GET /v1/log says %d %s", verifierKey, code, body)
		}
		status := eval[string](b, `document.getElementById("verify-status").className + " " + document.getElementById("verify-status").textContent`)
		if !strings.Contains(status, "ok") || !strings.Contains(status, "Verified in tree of size") || !strings.Contains(status, "signed by "+strings.Split(verifierKey, "+")[0]) {
			t.Fatalf("the event's proof check says %q; want it verified, in a tree, signed by the demo log's key", status)
		}
		if raw := eval[string](b, `document.getElementById("raw").textContent`); !strings.Contains(raw, `"action": "user.login.failed"`) {
			t.Errorf("raw JSON shows %q", raw)
		}
		// The event's times in the viewer's zone, with UTC beside them.
		when := eval[[]string](b, `[...document.querySelectorAll(".fields time")].map(t => t.getAttribute("datetime") + "|" + t.parentElement.textContent)`)
		if len(when) != 2 {
			t.Fatalf("the event page shows %d times (%q), want its time and receipt time", len(when), when)
		}
		for _, w := range when {
			iso, text, _ := strings.Cut(w, "|")
			at, err := time.Parse(time.RFC3339Nano, iso)
			if err != nil {
				t.Fatal(err)
			}
			local := at.In(time.FixedZone("JST", 9*3600)).Format("2006-01-02 15:04:05")
			utc := at.UTC().Format("2006-01-02 15:04:05")
			if !strings.HasPrefix(text, local) || !strings.Contains(text, "Asia/Tokyo") || !strings.Contains(text, "("+utc) || !strings.HasSuffix(text, " UTC)") {
				t.Errorf("the event page shows %s as %q; want Tokyo time %s, the zone, and UTC %s beside it", iso, text, local, utc)
			}
		}
		b.shot("detail")
		demoEventPath = eval[string](b, "location.pathname")

		// Alter the stored event behind the server's back: the server,
		// proving the event before it serves it, must say it is damaged
		// (a server that served it anyway would fail the browser's own
		// check, which web/verify_test.go covers).
		seq := eval[int64](b, `JSON.parse(document.getElementById("verify").dataset.proof).seq`)
		tamper(t, be, loc, "demo", seq, func(e *event.Event) { e.Reason = "nothing to see" })
		b.do(chromedp.Reload())
		b.waitFor("the altered event's page", `document.querySelector(".error-page") !== null`)
		msg := eval[string](b, `document.querySelector(".error-page").textContent`)
		if want := fmt.Sprintf("The stored event at seq %d is damaged", seq); !strings.Contains(msg, want) || !strings.Contains(msg, "run trail verify") {
			t.Fatalf("after altering the stored event, its page says %q; want %q and to run trail verify", msg, want)
		}
		if strings.Contains(eval[string](b, `document.body.textContent`), "nothing to see") {
			t.Errorf("the altered event's page shows the altered reason")
		}
		b.shot("detail-altered")
	})

	t.Run("overview", func(t *testing.T) {
		part(t)
		b.t = t
		b.open("/overview", "#chart")
		bars := eval[int](b, `document.querySelectorAll("#chart rect").length`)
		failed := eval[int](b, `document.querySelectorAll("#chart rect.o-failure").length`)
		if bars < 10 || failed == 0 {
			t.Errorf("the chart has %d bars' segments, %d of failures; want a day of hours with failures stacked", bars, failed)
		}
		ips := eval[[]string](b, `[...document.querySelectorAll("#failed-ips tbody tr td:first-child")].map(td => td.textContent.trim())`)
		if len(ips) == 0 || !contains(ips[:min(3, len(ips))], "203.0.113.7") {
			t.Errorf("failed and denied by IP lists %v; want the demo's attacking 203.0.113.7 among the top three", ips)
		}
		actions := eval[[]string](b, `[...document.querySelectorAll("#top-actions td:first-child")].map(td => td.textContent.trim())`)
		if len(actions) == 0 || actions[0] != "user.login" {
			t.Errorf("top actions %v; want user.login first", actions)
		}
		// Top actors show the names they gave, with their ids.
		actors := eval[[]string](b, `[...document.querySelectorAll("#top-actors td:first-child")].map(td => td.textContent.trim())`)
		named := 0
		for _, a := range actors {
			if regexp.MustCompile(`^[A-Z][a-z]+ [A-Z][a-z]+ usr_\d{4}$`).MatchString(a) {
				named++
			}
		}
		if named == 0 {
			t.Errorf("top actors %q: want the demo's people by name and id", actors)
		}
		if n := eval[int](b, `document.querySelectorAll("#admin-signins tr").length`); n == 0 {
			t.Errorf("no recent admin sign-ins shown")
		}
		// Trail's own reads are left out of the counts, and it says so.
		if hasRead(actions) {
			t.Errorf("top actions %v include Trail's own reads", actions)
		}
		if got := eval[string](b, `document.getElementById("totals").textContent`); !strings.Contains(got, "excluding Trail's own reads") {
			t.Errorf("the overview's total says %q; want it labelled as excluding Trail's own reads", got)
		}
		// At 1280 px the IP table fits its card: nothing clipped or
		// scrolled away.
		ipBox := eval[map[string]float64](b, `(() => {
			const t = document.getElementById("failed-ips"), c = t.closest(".card");
			const tr = t.getBoundingClientRect(), cr = c.getBoundingClientRect();
			return {tableRight: tr.right, cardRight: cr.right, scroll: c.scrollWidth, client: c.clientWidth, viewport: innerWidth};
		})()`)
		if ipBox["viewport"] != 1280 || ipBox["tableRight"] > ipBox["cardRight"] || ipBox["scroll"] > ipBox["client"] || ipBox["cardRight"] > ipBox["viewport"] {
			t.Errorf("at 1280 px the IP table is clipped: %v", ipBox)
		}
		// Each top list's bars are scaled to its largest value.
		for _, list := range []string{"top-actors", "top-actions"} {
			bars := eval[[][2]float64](b, `[...document.querySelectorAll("#`+list+` tr")].map(r => [
				Number(r.querySelector(".n").textContent.replace(/,/g, "")),
				(() => { const s = r.querySelector("svg.bar"), f = s && s.querySelector(".fill");
					return f ? f.getBoundingClientRect().width / s.getBoundingClientRect().width : -1; })()])`)
			if len(bars) < 2 {
				t.Fatalf("%s has %d rows", list, len(bars))
			}
			peak := bars[0][0]
			for i, bar := range bars {
				if want := bar[0] / peak; bar[1] < want-0.01 || bar[1] > want+0.01 {
					t.Errorf("%s row %d: %v events drawn %.3f of the bar's width, want %.3f (the largest, %v, full width)", list, i, bar[0], bar[1], want, peak)
				}
			}
		}
		b.shot("overview")

		// The switch puts Trail's reads back, and the URL keeps it.
		if !eval[bool](b, `!!document.getElementById("show-trail")`) {
			t.Fatal("the overview has no switch to show Trail's own reads")
		}
		b.do(chromedp.Click(chromedp.CSS("#show-trail")))
		b.waitFor("the overview with Trail's reads", `location.search.includes("trail=show") && document.documentElement.dataset.ready === "true" && !!document.getElementById("top-actions")`)
		actions = eval[[]string](b, `[...document.querySelectorAll("#top-actions td:first-child")].map(td => td.textContent.trim())`)
		if !hasRead(actions) {
			t.Errorf("with Trail's reads shown, top actions are %v", actions)
		}
		if got := eval[string](b, `document.getElementById("totals").textContent`); strings.Contains(got, "excluding") {
			t.Errorf("with Trail's reads shown, the total says %q", got)
		}
	})

	t.Run("live", func(t *testing.T) {
		part(t)
		b.t = t
		b.open("/?action=user.delete", "#rows")
		b.do(chromedp.Click(chromedp.CSS("#live")))
		// The stream is open once the server has recorded the tail.
		time.Sleep(700 * time.Millisecond)
		for _, action := range []string{"user.login", "user.delete"} {
			body := fmt.Sprintf(`{"actor":{"id":"live-check","name":"Live Check"},"action":%q,"source":{"ip":"192.0.2.1"}}`, action)
			if code, b, err := request(t, "POST", s.url+"/v1/events", appd, body); err != nil || code != 201 {
				t.Fatalf("append: %d %s %v", code, b, err)
			}
		}
		b.waitFor("the new row", `document.querySelector("#rows tr:first-child .actor").textContent.includes("Live Check")`)
		got := eval[[]viewRow](b, rowsJS)
		if got[0].Action != "user.delete" || (len(got) > 1 && got[1].Actor == "Live Check") {
			t.Errorf("live rows %+v; want only the new user.delete on top (the filter applies)", got[:2])
		}
	})

	t.Run("hostile values", func(t *testing.T) {
		part(t)
		b.t = t
		// A right-to-left override in an actor's name must not reorder the
		// role after it, and a 200-character name must not push the
		// other columns off the window.
		body := `{"actor":{"id":"mallory","name":"Mallory \u202e","role":"auditor"},"action":"hostile.view","targets":[{"type":"doc","id":"1","name":"report \u202e"},{"type":"user","id":"alice"}]}
{"actor":{"id":"` + strings.Repeat("x", 200) + `"},"action":"hostile.view","reason":"` + strings.Repeat("y", 300) + `"}`
		for _, line := range strings.Split(body, "\n") {
			if code, b, err := request(t, "POST", s.url+"/v1/events", appd, line); err != nil || code != 201 {
				t.Fatalf("append: %d %s %v", code, b, err)
			}
		}
		b.open("/?action=hostile.view", "#rows")
		ltr := func(sel string) bool {
			return eval[bool](b, `(el => {
				const t = el.firstChild, r = document.createRange();
				r.setStart(t, 0); r.setEnd(t, 1);
				const first = r.getBoundingClientRect().left;
				r.setStart(t, t.length - 1); r.setEnd(t, t.length);
				return first < r.getBoundingClientRect().left;
			})(document.querySelector(`+strconv.Quote(sel)+`))`)
		}
		if !ltr("#rows tr:last-child .role") {
			t.Errorf("the role after a name holding U+202E shows right to left")
		}
		if !ltr("#rows tr:last-child .targets a:last-child") {
			t.Errorf("the target after one whose name holds U+202E shows right to left")
		}
		if right := eval[float64](b, `Math.max(...[...document.querySelectorAll("#events th, #events td")].map(c => c.getBoundingClientRect().right))`); right > 1280 {
			t.Errorf("with a 200-character actor the events table reaches %.0f px, past the 1280 px window", right)
		}
		b.shot("events-hostile")
	})

	t.Run("phone", func(t *testing.T) {
		part(t)
		b.t = t
		b.do(chromedp.EmulateViewport(390, 844))
		b.open("/", "#rows")
		if w := eval[int](b, "document.documentElement.scrollWidth"); w > 390 {
			t.Errorf("at phone width the page is %d px wide; want it to fit 390", w)
		}
		// The events list reads without scrolling sideways: its box does
		// not scroll, and every cell of every row is on the screen.
		fit := eval[map[string]float64](b, `(() => {
			const w = document.querySelector(".table-wrap");
			let right = 0;
			for (const c of document.querySelectorAll("#events th, #events td")) {
				const r = c.getBoundingClientRect();
				if (r.width > 0) right = Math.max(right, r.right);
			}
			return {scroll: w.scrollWidth, client: w.clientWidth, right: right};
		})()`)
		if fit["scroll"] > fit["client"] || fit["right"] > 390 {
			t.Errorf("at 390 px the events list scrolls sideways: %v", fit)
		}
		if h := eval[string](b, `(h => h && h.getBoundingClientRect().width > 0 ? h.textContent : "")(document.getElementById("time-head"))`); !strings.Contains(h, "Asia/Tokyo") {
			t.Errorf("at 390 px the time zone is not named (%q)", h)
		}
		b.shot("events-phone")
		b.do(chromedp.EmulateViewport(1280, 900))
		// The keyboard reaches the page: the first Tab lands on the skip link.
		b.do(chromedp.KeyEvent("\t"))
		if got := eval[string](b, "document.activeElement.className"); got != "skip" {
			t.Errorf("the first Tab focuses %q, want the skip link", got)
		}
	})

	t.Run("sign out", func(t *testing.T) {
		part(t)
		b.t = t
		b.do(chromedp.Click(chromedp.CSS(`.who button`)))
		b.waitFor("the sign-in page", `location.pathname === "/signin" && !!document.getElementById("key")`)
		b.open("/", "#key")
		if p := eval[string](b, "location.pathname"); p != "/signin" {
			t.Errorf("after signing out, / shows %s", p)
		}
		checkPlaceholders(b, "sign-in page", false)
	})

	t.Run("other tenant", func(t *testing.T) {
		part(t)
		b.t = t
		b.signIn(otherKey)
		if got := eval[string](b, `document.getElementById("log-name").textContent`); got != "other" {
			t.Errorf("the other key signed in to log %q", got)
		}
		for _, r := range eval[[]viewRow](b, rowsJS) {
			if r.Action != "vault.open" && !strings.HasPrefix(r.Action, "trail.") {
				t.Errorf("the other tenant sees %+v", r)
			}
		}
		if text := eval[string](b, "document.body.innerText"); strings.Contains(text, "203.0.113") || strings.Contains(text, "user.login") {
			t.Errorf("the other tenant's page mentions the demo log's events")
		}
		// The demo event opened above is not found, nor its API record.
		b.open(demoEventPath, "main")
		if h := eval[string](b, `document.querySelector("main h1").textContent`); h != "Not found" {
			t.Errorf("the other tenant opening a demo event sees %q", h)
		}
		if got := evalAwait[int](b, `fetch("/v1`+demoEventPath+`").then(r => r.status)`); got != 404 {
			t.Errorf("the other tenant fetching a demo event from the API = %d, want 404", got)
		}
		b.open("/overview", "#totals")
		if text := eval[string](b, "document.querySelector('main').innerText"); strings.Contains(text, "203.0.113") {
			t.Errorf("the other tenant's overview shows the demo log's failing IPs")
		}
		for _, a := range eval[[]string](b, `[...document.querySelectorAll("#top-actions td:first-child")].map(td => td.textContent.trim())`) {
			if a != "vault.open" && !strings.HasPrefix(a, "trail.") {
				t.Errorf("the other tenant's top actions include %q", a)
			}
		}
	})

	t.Run("revoked", func(t *testing.T) {
		part(t)
		b.t = t
		id := strings.Split(otherKey, "_")[1]
		if r := run(t, "", at(st, "keys", "revoke", id)...); r.code != 0 {
			t.Fatalf("keys revoke: %+v", r)
		}
		time.Sleep(2500 * time.Millisecond) // the server trusts an authenticated key for 2 s
		b.open("/", "#key")
		if msg := eval[string](b, `document.getElementById("signin-error")?.textContent || ""`); !strings.Contains(msg, "revoked") {
			t.Errorf("with its key revoked, the session ends with %q", msg)
		}
	})

	t.Run("server down", func(t *testing.T) {
		part(t)
		b.t = t
		b.signIn(read)
		s.stop(t)
		b.do(chromedp.Click(chromedp.CSS("#more")))
		b.waitFor("the banner", `!document.getElementById("banner").hidden`)
		if msg := eval[string](b, `document.getElementById("banner").textContent`); !strings.Contains(msg, "did not answer") {
			t.Errorf("with the server gone, load more says %q", msg)
		}
	})
}

// checkPlaceholders checks that the page's placeholders are examples in a
// lighter, italic face, never mistaken for a value already entered; with
// examples, that they read "e.g. …".
func checkPlaceholders(b *browser, page string, examples bool) {
	b.t.Helper()
	type field struct {
		Name, Placeholder, Color, PlaceholderColor, PlaceholderStyle string
		Lum, PlaceholderLum                                          float64
	}
	fields := eval[[]field](b, `(() => {
		const lum = (c) => { const [r, g, b] = c.match(/[\d.]+/g).map(Number); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
		return [...document.querySelectorAll("input[placeholder]")].map(i => {
			const s = getComputedStyle(i), p = getComputedStyle(i, "::placeholder");
			return {name: i.name, placeholder: i.placeholder, color: s.color, placeholderColor: p.color,
				placeholderStyle: p.fontStyle, lum: lum(s.color), placeholderLum: lum(p.color)};
		});
	})()`)
	if len(fields) == 0 {
		b.t.Fatalf("%s: no input with a placeholder", page)
	}
	for _, f := range fields {
		if f.PlaceholderColor == f.Color || f.PlaceholderLum <= f.Lum || f.PlaceholderStyle != "italic" {
			b.t.Errorf("%s: the %s field's placeholder %q is %s %s, its text %s; want it lighter than the text, and italic",
				page, f.Name, f.Placeholder, f.PlaceholderStyle, f.PlaceholderColor, f.Color)
		}
		if examples && !strings.HasPrefix(f.Placeholder, "e.g. ") {
			b.t.Errorf("%s: the %s field's placeholder %q does not read as an example (e.g. …)", page, f.Name, f.Placeholder)
		}
	}
}

func hasRead(actions []string) bool {
	return slices.ContainsFunc(actions, trail.IsReadAction)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
