package client

// SetMaxAnswer sets the largest answer the client reads whole, for a
// test, and returns what restores it.
func SetMaxAnswer(n int64) (restore func()) {
	old := maxAnswer
	maxAnswer = n
	return func() { maxAnswer = old }
}
