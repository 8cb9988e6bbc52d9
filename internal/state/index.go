package state

import (
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/replicatord/replicatord/internal/job"
)

// sep ends the value part of an index key: <value>\x00<job id>. Job ids and
// indexed values never contain it (Create refuses such jobs).
const sep = 0

// indexKeys returns, per index bucket, the key a job has there (nil: none).
// The order matches indexNames.
func indexKeys(j *job.Job) [5][]byte {
	var k [5][]byte
	if !j.State.Terminal() {
		k[0] = []byte(j.ID)
	}
	k[1] = pairKey(strconv.Itoa(int(j.State)), j.ID)
	if j.Policy != "" {
		k[2] = pairKey(j.Policy, j.ID)
	}
	if j.SourceImageID != "" {
		k[3] = pairKey(j.SourceImageID, j.ID)
	}
	if j.DestinationRegion != "" {
		k[4] = pairKey(j.DestinationRegion, j.ID)
	}
	return k
}

var indexNames = [5][]byte{indexActive, indexState, indexPolicy, indexImage, indexRegion}

func pairKey(value, id string) []byte {
	b := make([]byte, 0, len(value)+1+len(id))
	b = append(b, value...)
	b = append(b, sep)
	return append(b, id...)
}

// updateIndexes moves the job's index entries from old (nil for a new job)
// to new.
func updateIndexes(tx *bolt.Tx, old, new *job.Job) error {
	var oldKeys [5][]byte
	if old != nil {
		oldKeys = indexKeys(old)
	}
	newKeys := indexKeys(new)
	idx := tx.Bucket(bucketIndex)
	for i, name := range indexNames {
		if string(oldKeys[i]) == string(newKeys[i]) && (oldKeys[i] != nil) == (newKeys[i] != nil) {
			continue
		}
		b := idx.Bucket(name)
		if oldKeys[i] != nil {
			if err := b.Delete(oldKeys[i]); err != nil {
				return err
			}
		}
		if newKeys[i] != nil {
			if err := b.Put(newKeys[i], []byte{}); err != nil {
				return err
			}
		}
	}
	return nil
}
