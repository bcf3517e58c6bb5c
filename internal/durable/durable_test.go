package durable_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/trail-audit/trail/internal/durable"
)

func TestWriteNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := durable.WriteNew(path, []byte("secret\n")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat = %v, %v; want mode 0600", st, err)
	}
	if err := durable.WriteNew(path, []byte("other\n")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteNew over an existing file = %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "secret\n" {
		t.Fatalf("the file holds %q after a refused WriteNew", b)
	}
	if err := durable.WriteNew(filepath.Join(t.TempDir(), "no", "such", "dir"), nil); err == nil {
		t.Fatal("WriteNew in a missing directory succeeded")
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint.txt")
	for _, text := range []string{"first\n", "second, longer\n", ""} {
		if err := durable.Replace(path, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != text {
			t.Fatalf("after Replace(%q) the file holds %q, %v", text, b, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the directory holds %v (%v); want the file alone, no temporary file", entries, err)
	}
	if err := durable.Replace(filepath.Join(dir, "missing", "x"), []byte("x")); err == nil {
		t.Fatal("Replace in a missing directory succeeded")
	}
}
