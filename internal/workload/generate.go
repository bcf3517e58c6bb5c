package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"time"
)

// The repository's own generator. It draws the same random numbers in the
// same order as the shared generator (`go run . -n N -seed S` in
// ../shared/workload, whose default format is Trail's event shape), so for
// the same n and seed it prints the same bytes: 25 Zipf-skewed actions
// (user.login about a third), about 7 % failures with a reason, actors
// drawn Zipf-style from 10,000 and targets from 100,000 per type, 2 to 5
// metadata keys, and about 2 % bursts of user.login.failed from four
// documentation-range addresses. TestSharedGenerator holds it to that.

// genAction is one verb: its name, the type of target it acts on, and how
// often it fails, per mille.
type genAction struct {
	name       string
	targetType string
	failPM     int
}

// genActions run from most to least frequent: a Zipf draw picks the index.
var genActions = []genAction{
	{"user.login", "user", 40},
	{"document.read", "document", 5},
	{"user.logout", "user", 0},
	{"session.refresh", "session", 10},
	{"user.login.failed", "user", 1000},
	{"document.update", "document", 20},
	{"user.update", "user", 15},
	{"api_key.use", "api_key", 30},
	{"document.create", "document", 10},
	{"subscription.toggle", "subscription", 25},
	{"test.create", "test", 10},
	{"test.run", "test", 60},
	{"password.reset", "user", 50},
	{"mfa.challenge", "user", 120},
	{"document.delete", "document", 30},
	{"role.grant", "role", 40},
	{"role.revoke", "role", 40},
	{"api_key.create", "api_key", 20},
	{"api_key.revoke", "api_key", 10},
	{"org.settings.update", "org", 30},
	{"billing.plan.change", "subscription", 60},
	{"user.create", "user", 25},
	{"user.invite", "user", 35},
	{"user.delete", "user", 45},
	{"export.download", "export", 70},
}

var (
	genRoles = []string{"member", "member", "member", "member", "editor", "editor", "admin", "owner", "auditor", "service"}
	// genReasons[0] and genReasons[8] are the two a failed login gives.
	genReasons = []string{
		"invalid_credentials", "permission_denied", "rate_limited", "mfa_required",
		"not_found", "conflict", "validation_error", "session_expired", "account_locked",
		"quota_exceeded",
	}
	genUserAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"curl/8.5.0",
		"python-requests/2.31.0",
		"Go-http-client/2.0",
		"acme-cli/3.2.1 (linux; amd64)",
		"Terraform/1.8.2 acme-provider/0.14.0",
		"okhttp/4.12.0",
	}
	genRegions   = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"}
	genClients   = []string{"web", "cli", "api", "mobile", "terraform"}
	genPlans     = []string{"free", "team", "business", "enterprise"}
	genDomains   = []string{"example.com", "acme.io", "globex.net", "initech.org", "umbrella.co"}
	genAttackers = []string{"203.0.113.7", "203.0.113.66", "198.51.100.23", "192.0.2.200"}
)

const (
	genActorCount  = 10_000
	genTargetCount = 100_000
)

// genStart is the time before the first event: the shared generator's
// default -start.
var genStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// The JSON shape printed. Field order and omitempty decide the bytes.
type (
	genActor struct {
		ID    string `json:"id"`
		Type  string `json:"type,omitempty"`
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	genTarget struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	genSource struct {
		IP        string `json:"ip"`
		UserAgent string `json:"user_agent"`
	}
	genEvent struct {
		Time      string            `json:"time"`
		Actor     genActor          `json:"actor"`
		Action    string            `json:"action"`
		Targets   []genTarget       `json:"targets"`
		Outcome   string            `json:"outcome"`
		Reason    string            `json:"reason,omitempty"`
		Source    genSource         `json:"source"`
		RequestID string            `json:"request_id"`
		Metadata  map[string]string `json:"metadata"`
	}
)

// generator prints events one at a time.
type generator struct {
	r       *rand.Rand // the main stream
	attacks *rand.Rand // which events become bursts, and from where
	actor   *rand.Zipf
	target  *rand.Zipf
	action  *rand.Zipf
	// Ids are scattered so that the popular ones are not all the lowest.
	actorPerm, targetPerm []int
	t                     time.Time
	buf                   bytes.Buffer
	enc                   *json.Encoder
}

func newGenerator(seed int64) *generator {
	r := rand.New(rand.NewSource(seed))
	g := &generator{
		r:       r,
		attacks: rand.New(rand.NewSource(seed ^ 0x5eed)),
		actor:   rand.NewZipf(r, 1.1, 1, genActorCount-1),
		target:  rand.NewZipf(r, 1.05, 1, genTargetCount-1),
		action:  rand.NewZipf(r, 1.2, 1, uint64(len(genActions)-1)),
		t:       genStart,
	}
	g.actorPerm = r.Perm(genActorCount)
	g.targetPerm = r.Perm(genTargetCount)
	g.enc = json.NewEncoder(&g.buf)
	g.enc.SetEscapeHTML(false)
	return g
}

// next returns the next event as a JSON line ending in a newline. The
// slice is valid until the following call.
func (g *generator) next() []byte {
	r := g.r
	// Strictly increasing times, 1 ms to about 201 ms apart.
	g.t = g.t.Add(time.Millisecond + time.Duration(r.Int63n(int64(200*time.Millisecond))))
	ai := g.actorPerm[g.actor.Uint64()]
	ac := genActions[g.action.Uint64()]
	ti := g.targetPerm[g.target.Uint64()]

	e := genEvent{
		Time: g.t.Format(time.RFC3339Nano),
		Actor: genActor{
			ID:    fmt.Sprintf("usr_%06d", ai),
			Type:  "user",
			Email: fmt.Sprintf("user%06d@%s", ai, genDomains[ai%len(genDomains)]),
			Role:  genRoles[ai%len(genRoles)],
		},
		Action:  ac.name,
		Targets: []genTarget{{Type: ac.targetType, ID: fmt.Sprintf("%s_%07d", ac.targetType, ti)}},
		Outcome: "success",
	}
	if e.Actor.Role == "service" {
		e.Actor.Type = "service"
	}
	// The draws below run in the shared generator's order.
	e.Source.IP = genIP(r, ai)
	e.Source.UserAgent = genUserAgents[(ai+r.Intn(2))%len(genUserAgents)]
	e.RequestID = fmt.Sprintf("req_%016x%016x", r.Uint64(), r.Uint64())
	e.Metadata = genMetadata(r, ac, ai)
	if r.Intn(1000) < ac.failPM {
		e.Outcome = "failure"
		if ac.name == "user.login.failed" {
			e.Reason = genReasons[r.Intn(2)*8]
		} else {
			e.Reason = genReasons[r.Intn(len(genReasons))]
		}
	}
	if g.attacks.Intn(50) == 0 {
		// A guessed password from an attacking address, against this
		// event's actor, at this event's time and with its request id.
		e.Action, e.Outcome, e.Reason = "user.login.failed", "failure", "invalid_credentials"
		e.Targets = []genTarget{{Type: "user", ID: e.Actor.ID}}
		e.Actor = genActor{ID: "anonymous", Type: "anonymous", Email: e.Actor.Email}
		e.Source = genSource{IP: genAttackers[g.attacks.Intn(len(genAttackers))], UserAgent: "python-requests/2.31.0"}
		e.Metadata = map[string]string{"client": "api", "attempted_user": e.Actor.Email}
	}
	g.buf.Reset()
	if err := g.enc.Encode(&e); err != nil {
		panic(err) // strings and maps of strings always encode
	}
	return g.buf.Bytes()
}

// genIP gives each actor a home /24, and one time in ten an address
// anywhere.
func genIP(r *rand.Rand, ai int) string {
	if r.Intn(10) == 0 {
		return fmt.Sprintf("%d.%d.%d.%d", 11+r.Intn(200), r.Intn(256), r.Intn(256), 1+r.Intn(254))
	}
	return fmt.Sprintf("10.%d.%d.%d", (ai/256)%256, ai%256, 1+(ai*7)%254)
}

// genMetadata returns 2 to 5 string keys: client and region always, then
// a session id, a trace id and one key that depends on the target type.
func genMetadata(r *rand.Rand, ac genAction, ai int) map[string]string {
	m := map[string]string{
		"client": genClients[(ai+r.Intn(3))%len(genClients)],
		"region": genRegions[ai%len(genRegions)],
	}
	extra := r.Intn(4)
	if extra > 0 {
		m["session_id"] = fmt.Sprintf("sess_%012x", r.Int63n(1<<48))
	}
	if extra > 1 {
		m["trace_id"] = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	}
	if extra > 2 {
		switch ac.targetType {
		case "subscription":
			m["plan"] = genPlans[r.Intn(len(genPlans))]
		case "document":
			m["bytes"] = fmt.Sprint(r.Intn(5_000_000))
		default:
			m["duration_ms"] = fmt.Sprint(r.Intn(2000))
		}
	}
	return m
}
