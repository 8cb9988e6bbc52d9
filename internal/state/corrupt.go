package state

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// reportCorrupt records an undecodable record once and tells
// Options.OnCorrupt about it.
func (d *DB) reportCorrupt(key string, err error) {
	d.cmu.Lock()
	if d.corrupt == nil {
		d.corrupt = map[string]bool{}
	}
	known := d.corrupt[key]
	d.corrupt[key] = true
	d.cmu.Unlock()
	if !known && d.opts.OnCorrupt != nil {
		d.opts.OnCorrupt(key, err)
	}
}

// CorruptRecords returns how many distinct undecodable records reads have
// met (and skipped) since Open.
func (d *DB) CorruptRecords() int {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	return len(d.corrupt)
}

// scanChunk is how many records Scan reads per read transaction.
const scanChunk = 1024

// Scan decodes every job and event record, in short read transactions so
// that it can run beside the daemon, and reports each record that does not
// decode (Options.OnCorrupt). It returns the number of records read and of
// undecodable ones. The daemon runs it once after start, so that a bad
// record is reported at start and not only when a list meets it; Check
// does the same and more, offline.
func (d *DB) Scan(ctx context.Context) (records, corrupt int, err error) {
	for _, bucket := range [][]byte{bucketJobs, bucketEvents} {
		var after []byte
		for {
			if err := ctx.Err(); err != nil {
				return records, corrupt, err
			}
			n := 0
			err := d.view(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucket).Cursor()
				k, v := c.First()
				if after != nil {
					if k, v = c.Seek(after); k != nil && string(k) == string(after) {
						k, v = c.Next()
					}
				}
				for ; k != nil && n < scanChunk; k, v = c.Next() {
					n++
					records++
					key := string(bucket) + "/" + string(k)
					if bucket[0] == bucketEvents[0] {
						if r, err := readU64("events key", k); err == nil {
							key = fmt.Sprintf("events/%d", r)
						}
					}
					if _, err := decodeJob(key, v); err != nil {
						corrupt++
						d.reportCorrupt(key, err)
					}
					after = append(after[:0], k...)
				}
				return nil
			})
			if err != nil {
				return records, corrupt, err
			}
			if n < scanChunk {
				break
			}
		}
	}
	return records, corrupt, nil
}
