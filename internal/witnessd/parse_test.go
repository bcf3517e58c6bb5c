package witnessd

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

var hashB64 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func TestParseRequest(t *testing.T) {
	cp := "example.com/log\n3\n" + hashB64 + "\n\n— example.com/log AAAA\n"
	for _, tc := range []struct {
		name      string
		body      string
		wantOld   uint64
		wantProof int
		wantErr   bool
	}{
		{name: "old 0", body: "old 0\n\n" + cp, wantOld: 0},
		{name: "old 2 with a proof", body: "old 2\n" + hashB64 + "\n" + hashB64 + "\n\n" + cp, wantOld: 2, wantProof: 2},
		{name: "largest size", body: "old 18446744073709551615\n\n" + cp, wantOld: 1<<64 - 1},
		{name: "63 proof lines", body: "old 2\n" + strings.Repeat(hashB64+"\n", 63) + "\n" + cp, wantOld: 2, wantProof: 63},
		{name: "64 proof lines", body: "old 2\n" + strings.Repeat(hashB64+"\n", 64) + "\n" + cp, wantErr: true},
		{name: "empty", body: "", wantErr: true},
		{name: "no newline", body: "old 0", wantErr: true},
		{name: "no empty line", body: "old 0\n" + hashB64 + "\n", wantErr: true},
		{name: "no checkpoint", body: "old 0\n\n", wantErr: true},
		{name: "leading zero", body: "old 01\n\n" + cp, wantErr: true},
		{name: "plus sign", body: "old +1\n\n" + cp, wantErr: true},
		{name: "two spaces", body: "old  1\n\n" + cp, wantErr: true},
		{name: "trailing text", body: "old 1 x\n\n" + cp, wantErr: true},
		{name: "overflow", body: "old 18446744073709551616\n\n" + cp, wantErr: true},
		{name: "OLD", body: "OLD 1\n\n" + cp, wantErr: true},
		{name: "carriage return", body: "old 1\r\n\n" + cp, wantErr: true},
		{name: "short hash", body: "old 1\nAAAA\n\n" + cp, wantErr: true},
		{name: "not base64", body: "old 1\n" + strings.Repeat("!", 44) + "\n\n" + cp, wantErr: true},
		{name: "unpadded hash", body: "old 1\n" + strings.TrimRight(hashB64, "=") + "\n\n" + cp, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequest([]byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Errorf("parseRequest(%q) = %+v, want an error", tc.body, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRequest(%q) = %v", tc.body, err)
			}
			if got.oldSize != tc.wantOld || len(got.proof) != tc.wantProof || string(got.checkpoint) != cp {
				t.Errorf("parseRequest(%q) = old %d, %d proof lines, checkpoint %q; want %d, %d, %q", tc.body, got.oldSize, len(got.proof), got.checkpoint, tc.wantOld, tc.wantProof, cp)
			}
		})
	}
}

// Whatever the body, parseRequest does not panic, and what it accepts is
// exactly the encoding of what it returns.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nexample.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAA\n"))
	f.Add([]byte("old 5\n" + hashB64 + "\n\nx\n"))
	f.Add([]byte("old 01\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := parseRequest(body)
		if err != nil {
			return
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "old %d\n", s.oldSize)
		for _, h := range s.proof {
			b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
		}
		b.WriteString("\n")
		b.Write(s.checkpoint)
		if !bytes.Equal(b.Bytes(), body) {
			t.Errorf("parseRequest(%q) accepted it as %q", body, b.Bytes())
		}
		if len(s.proof) > maxProofLines || len(s.checkpoint) == 0 {
			t.Errorf("parseRequest(%q) = %d proof lines, checkpoint %q", body, len(s.proof), s.checkpoint)
		}
	})
}
