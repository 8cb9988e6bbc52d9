package state

import (
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// maxCheckProblems caps the problems Check reports, so a badly damaged file
// gives a readable answer.
const maxCheckProblems = 100

// Check opens the state file read-only (it fails if a daemon holds it) and
// verifies it: bbolt's page-level consistency check, then this package's
// layout — schema version, every record decodes (jobs, events, request
// records), meta revisions agree with the events, every index entry matches
// its job and every job its index entries, and request records name jobs
// that exist. An empty (0-byte) file, or a bbolt file without replicatord's
// buckets, is reported as such. It returns nil for a healthy file, otherwise every problem found
// (up to 100) joined, wrapped in errdefs.ErrDataLoss.
func Check(path string) error {
	if path == "" {
		return errdefs.Invalid("state_file", "path is empty")
	}
	if exists, err := checkExisting(path); err != nil {
		return err
	} else if !exists {
		return fmt.Errorf("state file %s does not exist: %w", path, errdefs.ErrNotFound)
	}
	bdb, err := openBolt(path, &bolt.Options{
		ReadOnly:     true,
		Timeout:      defaultLockTimeout,
		FreelistType: bolt.FreelistMapType,
		// Read the freelist now, in this goroutine, where a panic on a
		// corrupt freelist page is recovered by openBolt.
		PreLoadFreelist: true,
	}, defaultLockTimeout)
	if err != nil {
		return err
	}
	defer bdb.Close()
	var problems []error
	add := func(err error) bool {
		problems = append(problems, err)
		return len(problems) < maxCheckProblems
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				add(fmt.Errorf("bbolt failed reading the file: %v", p))
			}
		}()
		_ = bdb.View(func(tx *bolt.Tx) error {
			// tx.Check walks the pages in a goroutine of its own, where a
			// corrupt page panics beyond any recover and kills the
			// process. So first read every page here, where a panic is
			// recovered; tx.Check runs only if that walk succeeds.
			walkAll(tx)
			checkLayout(path, tx, add)
			// Read to the end even past the cap, so bbolt's checking
			// goroutine ends.
			for err := range tx.Check() {
				if len(problems) < maxCheckProblems {
					add(err)
				}
			}
			return nil
		})
	}()
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("state file %s failed its check (%d problems): %w: %w", path, len(problems), errors.Join(problems...), errdefs.ErrDataLoss)
}

// checkLayout verifies what bbolt cannot know: the package's own invariants.
func checkLayout(path string, tx *bolt.Tx, add func(error) bool) {
	idx, ok := checkBuckets(path, tx, add)
	if !ok {
		return
	}
	rev, compacted, err := readRevisions(path, tx)
	if err != nil {
		add(err)
		return
	}
	if !checkEvents(tx, compacted, rev, add) {
		return
	}
	expected, ok := checkJobs(tx, rev, add)
	if !ok {
		return
	}
	if !checkIndex(idx, expected, add) {
		return
	}
	checkRequests(tx, add)
}

// checkBuckets checks the schema version and that every bucket exists; it
// returns the index bucket, and false when the check cannot go on.
func checkBuckets(path string, tx *bolt.Tx, add func(error) bool) (*bolt.Bucket, bool) {
	v, err := readSchemaVersion(path, tx)
	if err != nil {
		add(err)
		return nil, false
	}
	if v == 0 {
		add(errEmptyBolt(path))
		return nil, false
	}
	if v != schemaVersion() {
		add(fmt.Errorf("schema version %d, this replicatord checks version %d (open it with replicatord once to migrate)", v, schemaVersion()))
		return nil, false
	}
	for _, name := range [][]byte{bucketJobs, bucketEvents, bucketRequests} {
		if tx.Bucket(name) == nil {
			add(fmt.Errorf("bucket %s is missing", name))
			return nil, false
		}
	}
	idx := tx.Bucket(bucketIndex)
	if idx == nil {
		add(errors.New("bucket index is missing"))
		return nil, false
	}
	for _, name := range indexNames {
		if idx.Bucket(name) == nil {
			add(fmt.Errorf("bucket index/%s is missing", name))
			return nil, false
		}
	}
	return idx, true
}

// checkEvents checks that the events are contiguous from compacted+1 to
// rev, each decoding to a job with that revision. false: stop.
func checkEvents(tx *bolt.Tx, compacted, rev int64, add func(error) bool) bool {
	want := compacted + 1
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := readU64("events key", k)
		if err != nil {
			if !add(err) {
				return false
			}
			continue
		}
		if r != want && !add(fmt.Errorf("events: expected revision %d, found %d", want, r)) {
			return false
		}
		want = r + 1
		j, err := decodeJob(fmt.Sprintf("events/%d", r), v)
		if err != nil {
			if !add(err) {
				return false
			}
			continue
		}
		if j.Revision != r && !add(fmt.Errorf("events/%d holds job %q with revision %d", r, j.ID, j.Revision)) {
			return false
		}
	}
	return want == rev+1 || add(fmt.Errorf("events end at revision %d but meta/revision is %d", want-1, rev))
}

// checkJobs checks every job and returns the index entries the jobs imply,
// as "<index>/<key>". false: stop.
func checkJobs(tx *bolt.Tx, rev int64, add func(error) bool) (map[string]bool, bool) {
	expected := map[string]bool{}
	err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		j, err := decodeJob("jobs/"+string(k), v)
		if err == nil && j.ID != string(k) {
			err = fmt.Errorf("jobs/%s holds job %q", k, j.ID)
		}
		if err == nil && j.Revision > rev {
			err = fmt.Errorf("jobs/%s has revision %d, above meta/revision %d", k, j.Revision, rev)
		}
		if err == nil && validateState(j.ID, j.State) != nil {
			err = fmt.Errorf("jobs/%s has unknown state %s", k, j.State)
		}
		if err != nil {
			if !add(err) {
				return errStop
			}
			return nil
		}
		for i, key := range indexKeys(j) {
			if key != nil {
				expected[string(indexNames[i])+"/"+string(key)] = true
			}
		}
		return nil
	})
	return expected, err == nil
}

// checkIndex checks that the index holds exactly the expected entries.
// false: stop.
func checkIndex(idx *bolt.Bucket, expected map[string]bool, add func(error) bool) bool {
	for _, name := range indexNames {
		err := idx.Bucket(name).ForEach(func(k, _ []byte) error {
			key := string(name) + "/" + string(k)
			if !expected[key] {
				if !add(fmt.Errorf("index/%q has no matching job", key)) {
					return errStop
				}
				return nil
			}
			delete(expected, key)
			return nil
		})
		if err != nil {
			return false
		}
	}
	for key := range expected {
		if !add(fmt.Errorf("index/%q is missing", key)) {
			return false
		}
	}
	return true
}

// checkRequests checks that the request records decode, are filed under
// their id and name jobs that exist.
func checkRequests(tx *bolt.Tx, add func(error) bool) {
	jobs := tx.Bucket(bucketJobs)
	_ = tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		rec, err := decodeRequest("requests/"+string(k), v)
		if err == nil && rec.ID != string(k) {
			err = fmt.Errorf("requests/%s holds request %q", k, rec.ID)
		}
		if err == nil {
			for _, id := range rec.JobIDs {
				if jobs.Get([]byte(id)) == nil {
					err = fmt.Errorf("requests/%s names job %q, which does not exist", k, id)
					break
				}
			}
		}
		if err != nil && !add(err) {
			return errStop
		}
		return nil
	})
}

// walkAll reads every key and value of every bucket, which makes bbolt load
// (and sanity-check) every reachable branch and leaf page.
func walkAll(tx *bolt.Tx) {
	var walk func(b *bolt.Bucket)
	walk = func(b *bolt.Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				if child := b.Bucket(k); child != nil {
					walk(child)
				}
			}
		}
	}
	_ = tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
		walk(b)
		return nil
	})
}
