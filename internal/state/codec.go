package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// codecJSON is the first byte of a record holding JSON of job.Job. A faster
// encoding can be added under a new byte and read side by side.
const codecJSON byte = 1

func encodeJob(j *job.Job) ([]byte, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode job %q: %v: %w", j.ID, err, errdefs.ErrInternal)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, codecJSON)
	return append(out, b...), nil
}

// decodeJob decodes a record; what names the record (its bucket and key)
// in the error. b may be memory owned by a bbolt transaction: the decoded
// job copies everything it keeps.
func decodeJob(what string, b []byte) (*job.Job, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: empty record: %w", what, errdefs.ErrDataLoss)
	}
	if b[0] != codecJSON {
		return nil, fmt.Errorf("%s: unknown record encoding %d (written by a newer replicatord?): %w",
			what, b[0], errdefs.ErrDataLoss)
	}
	j := new(job.Job)
	if err := json.Unmarshal(b[1:], j); err != nil {
		return nil, fmt.Errorf("%s: record does not decode: %v: %w", what, err, errdefs.ErrDataLoss)
	}
	return j, nil
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func revKey(rev int64) []byte { return u64(uint64(rev)) }

func readU64(what string, b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%s: want 8 bytes, found %d: %w", what, len(b), errdefs.ErrDataLoss)
	}
	v := binary.BigEndian.Uint64(b)
	if v > 1<<62 {
		return 0, fmt.Errorf("%s: implausible value %d: %w", what, v, errdefs.ErrDataLoss)
	}
	return int64(v), nil
}
