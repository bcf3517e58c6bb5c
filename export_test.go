package trail

import (
	"context"

	"golang.org/x/mod/sumdb/note"
)

// SetIndexTallyKeys makes VerifyIndex hold at most n keys of each tally in
// memory, so that tests spill them to files, until the returned function
// restores the default.
func SetIndexTallyKeys(n int) (restore func()) {
	old := indexTallyKeys
	indexTallyKeys = n
	return func() { indexTallyKeys = old }
}

// LogSigner returns the signing key of the named log of db, as its store
// keeps it (a postgres store's sealed in the database).
func LogSigner(ctx context.Context, db *DB, name string) (note.Signer, error) {
	info, err := db.st.Log(ctx, name)
	if err != nil {
		return nil, err
	}
	return db.signers.Signer(ctx, logRef{Name: info.Name, Origin: info.Origin, VerifierKey: info.VerifierKey})
}
