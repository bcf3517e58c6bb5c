// Package schema reads a store backend's migrations: the files
// NNNN_name.sql embedded in its binary, numbered from 1 without gaps. Each
// backend applies them its own way (SQLite records the version in
// user_version, PostgreSQL in a table, under an advisory lock).
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one numbered step of a schema.
type Migration struct {
	Version int64
	Name    string // its file name
	SQL     string
}

// MustLoad is Load for migrations that are part of the binary, where one
// misnamed or missing is a bug of the build: it panics.
func MustLoad(fsys fs.FS, dir string) []Migration {
	ms, err := Load(fsys, dir)
	if err != nil {
		panic(err)
	}
	return ms
}

// Load reads the files dir/NNNN_name.sql of fsys, which must be numbered 1,
// 2, … without gaps, in order.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || len(num) != 4 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: want a name NNNN_name.sql", name)
		}
		if want := int64(len(ms) + 1); v != want {
			return nil, fmt.Errorf("migration %s: numbered %d, want %d", name, v, want)
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(data)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}
