package durable_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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

// TestWriteNewKilled kills a process while WriteNew writes a large file:
// the path is then absent, never part written, and a WriteNew after it
// writes the file whole and leaves no temporary file.
func TestWriteNewKilled(t *testing.T) {
	if path := os.Getenv("DURABLE_WRITE_NEW"); path != "" {
		durable.WriteNew(path, make([]byte, 256<<20))
		os.Exit(0)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteNewKilled$")
	cmd.Env = append(os.Environ(), "DURABLE_WRITE_NEW="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the write has begun.
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the writer made no file in 20 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil {
		t.Skip("the writer finished before it was killed")
	}
	if st, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the writer was killed, %s exists (%d bytes, %v), want it absent", path, st.Size(), err)
	}
	if err := durable.WriteNew(path, []byte("secret\n")); err != nil {
		t.Fatalf("WriteNew after a killed one: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "secret\n" {
		t.Errorf("the file holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the directory holds %v, want the file alone", names)
	}
}
