// Package durable writes files that a crash leaves whole or absent, never
// in part: keys, key files, saved checkpoints and receipts.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteNew writes data to the new file path, mode 0600, and syncs it and
// its directory entry. It fails if path exists (an error matching
// fs.ErrExist). A crash or kill leaves path whole or absent: data goes to
// a temporary file beside it, synced, then linked to path, which fails
// if path exists. A temporary file a killed WriteNew of the same path
// left is removed first.
func WriteNew(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	prefix := "." + base + ".new"
	removeStale(dir, prefix)
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: underlying(err)}
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: underlying(err)}
	}
	if err := os.Link(f.Name(), path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	SyncDir(dir)
	return nil
}

// removeStale removes the files of dir whose names start with prefix:
// the temporary files of writes that were killed.
func removeStale(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Replace makes path hold data, as a File does: a regular file (or a new
// one, mode 0600) holds either what it held or all of data.
func Replace(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// File is a file being written to replace path. Where path is a regular
// file or does not exist, the writes go to a temporary file in the same
// directory, which Commit syncs and renames over path, syncing the
// directory: path then holds either what it held or all that was
// written. Where path is something else, such as a device (/dev/stdout),
// a FIFO or a socket, the writes go to path itself, which is not
// replaced. A symbolic link is followed, and left in place. Errors name
// path, not the temporary file.
type File struct {
	f      *os.File
	path   string // as given
	final  string // where the data goes: path, or the file a link leads to
	direct bool   // writing final itself
}

// Create starts a File for path.
func Create(path string) (*File, error) {
	final := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		final = resolved
	}
	fi, err := os.Stat(final)
	switch {
	case err == nil && fi.IsDir():
		return nil, &os.PathError{Op: "write", Path: path, Err: errors.New("is a directory")}
	case err == nil && !fi.Mode().IsRegular(), err != nil && !errors.Is(err, fs.ErrNotExist):
		// A device, a FIFO, a socket, or a dangling link: written in
		// place, as the shell's > would.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		return &File{f: f, path: path, final: path, direct: true}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp*")
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: underlying(err)}
	}
	return &File{f: f, path: path, final: final}, nil
}

// underlying is the error inside a *os.PathError, which names a
// temporary file.
func underlying(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Write writes to the file.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	if err != nil {
		err = &os.PathError{Op: "write", Path: f.path, Err: underlying(err)}
	}
	return n, err
}

// Commit makes path hold what was written.
func (f *File) Commit() error {
	if f.direct {
		if err := f.f.Close(); err != nil {
			return &os.PathError{Op: "write", Path: f.path, Err: underlying(err)}
		}
		return nil
	}
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.f.Name(), f.final)
	}
	if err != nil {
		os.Remove(f.f.Name())
		return &os.PathError{Op: "write", Path: f.path, Err: underlying(err)}
	}
	SyncDir(filepath.Dir(f.final))
	return nil
}

// Abort leaves path as it was (a device or FIFO has what was written
// already) and removes the temporary file.
func (f *File) Abort() {
	f.f.Close()
	if !f.direct {
		os.Remove(f.f.Name())
	}
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
