// Package durable writes files that a crash leaves whole or absent, never
// in part: keys, key files, saved checkpoints and receipts.
package durable

import (
	"os"
	"path/filepath"
)

// WriteNew writes data to the new file path, mode 0600, and syncs it and
// its directory entry. It fails if path exists, and removes what it wrote
// if it fails after creating the file.
func WriteNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// Replace makes path hold data, mode 0600: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory, so path holds either what it held or all of data.
func Replace(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// SyncDir syncs the directory dir, so that the entries created or renamed
// in it survive a crash. It is best effort: some systems cannot sync a
// directory.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
