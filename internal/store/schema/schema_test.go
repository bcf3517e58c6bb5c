package schema

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("CREATE TABLE t (a);")}
	cases := []struct {
		name  string
		files []string
		want  string // part of the error; "" for none
	}{
		{name: "in order", files: []string{"0001_a.sql", "0002_b.sql"}},
		{name: "a gap", files: []string{"0001_a.sql", "0003_c.sql"}, want: "0003_c.sql: numbered 3, want 2"},
		{name: "not from 1", files: []string{"0002_b.sql"}, want: "numbered 2, want 1"},
		{name: "no number", files: []string{"0001_a.sql", "init.sql"}, want: "init.sql: want a name NNNN_name.sql"},
		{name: "not SQL", files: []string{"0001_a.txt"}, want: "want a name NNNN_name.sql"},
		{name: "none", files: nil, want: "no migrations"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m": &fstest.MapFile{Mode: os.ModeDir | 0o755}}
			for _, f := range c.files {
				fsys["m/"+f] = file
			}
			ms, err := Load(fsys, "m")
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Load(%v) = %v, want nil", c.files, err)
			case c.want == "" && len(ms) != len(c.files):
				t.Errorf("Load(%v) = %d migrations, want %d", c.files, len(ms), len(c.files))
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Load(%v) = %v, want an error with %q", c.files, err, c.want)
			}
		})
	}
}
