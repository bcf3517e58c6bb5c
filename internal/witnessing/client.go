package witnessing

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// maxResponse bounds what is read of a witness's answer: cosignature
// lines, a size, or an error message.
const maxResponse = 64 << 10

// ConflictError is a witness's 409 answer with its text/x.tlog.size body:
// the size of the latest checkpoint of the log it cosigned is not the old
// size submitted. Submitting again from Size, with a consistency proof
// from it, is what tlog-witness asks.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the witness last cosigned size %d, not the old size submitted", e.Size)
}

// StatusError is a witness's answer other than 200 and a 409 giving a
// size: 403 (the log's signature is not one the witness trusts), 404
// (the witness does not know the log), 422 (the proof or the checkpoint
// does not match what it cosigned: a fork or a rollback), and others.
type StatusError struct {
	Status  int
	Message string // the start of the answer's body, if it had one
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("the witness answered %d %s", e.Status, http.StatusText(e.Status))
	if why := statusMeaning[e.Status]; why != "" {
		msg += " (" + why + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// statusMeaning says what tlog-witness means by the codes it names.
var statusMeaning = map[int]string{
	http.StatusBadRequest:          "malformed request, or an old size larger than the checkpoint's",
	http.StatusForbidden:           "the checkpoint's signature is not one the witness trusts for the log",
	http.StatusNotFound:            "the witness does not know the log's origin",
	http.StatusConflict:            "the checkpoint does not match the one the witness cosigned",
	http.StatusUnprocessableEntity: "the checkpoint is not consistent with the one the witness cosigned: the log was forked or rolled back, or the proof is wrong",
	http.StatusTooManyRequests:     "the witness is overloaded",
}

// Submit posts a signed checkpoint to a witness's add-checkpoint endpoint
// (https://c2sp.org/tlog-witness): "old N", the consistency proof from
// size N to the checkpoint's, one base64 hash a line, a blank line, and
// the checkpoint. It returns the cosignature lines of the witness's 200
// answer, unchecked; a *ConflictError or a *StatusError for the witness's
// refusals; another error when the witness could not be reached or did
// not answer within ctx.
func Submit(ctx context.Context, hc *http.Client, url string, oldSize int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", oldSize)
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		body.WriteByte('\n')
	}
	body.WriteByte('\n')
	body.Write(checkpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+"/add-checkpoint", &body)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read the witness's answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return data, nil
	case http.StatusConflict:
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/x.tlog.size" {
			n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("the witness answered 409 with a malformed size %q", truncate(data))
			}
			return nil, &ConflictError{Size: n}
		}
	}
	return nil, &StatusError{Status: resp.StatusCode, Message: truncate(data)}
}

// truncate returns the first line of a witness's answer, at most 200
// bytes of it, for an error message.
func truncate(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(strings.TrimSpace(s), "?")
}
