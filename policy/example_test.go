package policy_test

import (
	"crypto/rand"
	"fmt"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/trail-audit/trail/policy"
)

// A policy of two witnesses, both needed, checked against a checkpoint
// that one of them cosigned and then against one both cosigned.
func Example() {
	// The log's key and a checkpoint it signed; a witness's key pair.
	logSkey, logVkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	logSigner, _ := note.NewSigner(logSkey)
	witness := func(name string) (vkey string, s note.Signer) {
		skey, v, _ := note.GenerateKey(rand.Reader, name)
		vkey, _ = fnote.VKeyToCosignatureV1(v) // the form a witness line takes (type 0x04)
		s, _ = fnote.NewSignerForCosignatureV1(skey)
		return vkey, s
	}
	w1, s1 := witness("w1.example.org")
	w2, s2 := witness("w2.example.org")

	p, err := policy.Parse([]byte(`# who must cosign example.com/log
log ` + logVkey + `
witness w1 ` + w1 + ` https://w1.example.org
witness w2 ` + w2 + ` https://w2.example.org/tlog
group both all w1 w2
quorum both
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	body := "example.com/log\n3\nqaBUX0TAjZWz0hLaKSgDzrtKxvXCkM1tmWPOd0CZJho=\n"
	cosigned := func(signers ...note.Signer) []byte {
		n, _ := note.Sign(&note.Note{Text: body}, signers...)
		return n
	}
	fmt.Println(p.Check(cosigned(logSigner, s1)))
	fmt.Println(p.Check(cosigned(logSigner, s1, s2)))
	_, err = policy.Parse([]byte("# a typo\nwitness w1 w1.example.org+1234\nquorum w1\n"))
	fmt.Println(err)
	// Output:
	// quorum 2 of w1, w2: not met (cosigned by w1; missing w2)
	// quorum 2 of w1, w2: met (cosigned by w1, w2)
	// policy line 2: witness w1 key "w1.example.org+1234": not a signed-note verifier key (NAME+HASH+BASE64)
}
