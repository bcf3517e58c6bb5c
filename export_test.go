package trail

// SetIndexTallyKeys makes VerifyIndex hold at most n keys of each tally in
// memory, so that tests spill them to files, until the returned function
// restores the default.
func SetIndexTallyKeys(n int) (restore func()) {
	old := indexTallyKeys
	indexTallyKeys = n
	return func() { indexTallyKeys = old }
}
