package api

// WitnessedHeader names the response header of GET /v1/checkpoint, GET
// /v1/tlog/checkpoint and GET /v1/events/{id} that says whether the
// checkpoint in the answer meets the server's witness policy (C2SP
// tlog-policy; trail serve --witness-policy): WitnessedMet, WitnessedUnmet
// or WitnessedNone. EventProof.Witnessed says the same in the body.
//
// It is the server's say-so: a client that must rely on it checks the
// checkpoint's cosignatures against the policy it holds itself (package
// policy).
const WitnessedHeader = "Trail-Witnessed"

// Values of WitnessedHeader and EventProof.Witnessed.
const (
	// WitnessedMet: the checkpoint carries cosignatures that meet the
	// policy.
	WitnessedMet = "met"
	// WitnessedUnmet: no checkpoint meeting the policy exists yet (or
	// covers the event, or ?witnessed=false asked for the latest signed
	// one): the answer holds the log's latest signed checkpoint.
	WitnessedUnmet = "unmet"
	// WitnessedNone: no witness policy covers the log (the header only;
	// EventProof.Witnessed is then empty).
	WitnessedNone = "none"
)
