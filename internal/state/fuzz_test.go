package state

import (
	"errors"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// FuzzDecodeToken: page tokens come from clients; any string must give
// either an id that round-trips or ErrInvalidArgument, never a panic.
func FuzzDecodeToken(f *testing.F) {
	f.Add("")
	f.Add(encodeToken(job.NewID(time.Unix(0, 0))))
	f.Add("Yw")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := decodeToken(tok)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("decodeToken(%q) = %v, want ErrInvalidArgument", tok, err)
			}
			return
		}
		if tok != "" && decodeMust(t, encodeToken(id)) != id {
			t.Fatalf("token for %q does not round-trip", id)
		}
	})
}

func decodeMust(t *testing.T, tok string) string {
	id, err := decodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// FuzzDecodeJob: records come from a file that may be damaged; any bytes
// must give a job or ErrDataLoss, never a panic.
func FuzzDecodeJob(f *testing.F) {
	good, _ := encodeJob(&job.Job{ID: "j-1", State: job.StateQueued, Tags: map[string]string{"a": "b"}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{codecJSON, '{'})
	f.Add([]byte{9, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeJob("jobs/x", b); err != nil && !errors.Is(err, errdefs.ErrDataLoss) {
			t.Fatalf("decodeJob = %v, want ErrDataLoss", err)
		}
	})
}
