// Package state is replicatord's durable job store: a single bbolt file
// behind the narrow Store interface (see store.go), so that another
// backend can replace it: internal/state/etcdstore keeps the same contract
// in etcd (not yet selectable in the daemon's config). statetest is the
// contract as a test suite, run by both; backend.go holds the rules every
// backend shares. Nothing outside this package sees bbolt.
//
// # Bucket layout
//
// Update this tree each time the layout changes, in addition to adding a
// migration to the migrations slice (schema.go) and a test for it.
//
//	meta/
//	    schema_version      -> uint64 big endian (currently 3)
//	    revision            -> uint64 big endian, revision of the last change
//	    compacted_revision  -> uint64 big endian, newest revision whose event was deleted
//	jobs/
//	    <job id>            -> encoded job (codec.go)
//	events/
//	    <revision, 8 bytes big endian> -> encoded job after the change
//	index/
//	    active/<job id>                    -> ""  (non-terminal jobs; restart reads only these)
//	    state/<state number>\x00<job id>   -> ""
//	    policy/<policy>\x00<job id>        -> ""  (jobs with a policy)
//	    image/<source image id>\x00<job id> -> ""
//	    region/<destination region>\x00<job id> -> ""
//	requests/
//	    <client request id> -> version byte 1, then JSON of RequestRecord:
//	                           fingerprint of the parameters, summary,
//	                           create time, the answering job ids and
//	                           whether each existed before (requests.go)
//	tombstones/                            (schema 3)
//	    <policy>\x00<source image id>\x00<destination region> -> JSON of job.Tombstone
//
// A tombstone is written in the same transaction as the Update that first
// sets CancelRequested on a policy job, and deleted in the same transaction
// as the Update that retries that job (CANCELLED or FAILED back to QUEUED)
// or first sets its CancelLifted (a policy change that names the image).
// CreateUnlessCancelled checks them in the same transaction as its insert,
// so a reconcile that listed ECS before a cancel cannot bring the pair back.
//
// Every value is written and read only by this package. A record is a
// version byte followed by JSON of job.Job; the byte lets the encoding change
// without a full migration. A record that does not decode is reported as
// errdefs.ErrDataLoss naming its key, never a panic: Get and Update of that
// job fail so, while List, Active (the scheduler's start), Watch and
// CreateRequest skip it and report it once through Options.OnCorrupt (the
// daemon logs it and counts it in replicatord_state_corrupt_records), so
// one bad record cannot take every listing down. Scan meets every record
// once, for a report at start.
//
// # Requests
//
// CreateRequest writes an API request's jobs and, when the client gave a
// request id, the id's record in ONE transaction, after checking in that
// transaction whether the id is recorded (replay, or ErrAlreadyExists for
// other parameters) and which existing jobs the request may reuse. Because
// the writer applies requests one after another, concurrent identical
// requests create their jobs once. Records are kept as long as the jobs
// they name: retention's RemoveFinished deletes a record with the first of
// its jobs it removes, which frees the request id again.
//
// # Creating the file
//
// A new state file is written to a temporary file beside it and
// hard-linked into place (create.go), so a file at the path is never half
// made: an empty file, or a bbolt file without the meta bucket, is refused
// rather than taken for a new store.
//
// # Writes: group commit
//
// One writer goroutine owns every write transaction. Create and Update hand
// it a request over an unbuffered channel and wait. The writer takes the
// first request, drains whatever other requests are already waiting (up to
// Options.MaxBatchSize, optionally waiting Options.MaxBatchDelay for more),
// applies them in order in ONE bbolt transaction and commits (fsync) once,
// then answers every caller. Requests that arrive during a commit form the
// next batch, so under load one fsync serves many updates while a lone
// update pays no added delay. Compared with bbolt's db.Batch, each update
// function runs exactly once per commit and one that fails or panics is
// answered alone without re-running the others; only a storage error in the
// middle of a request (which bbolt cannot roll back partially) makes the
// writer retry the batch one request per transaction.
//
// Every change gets its own revision; the revision counter lives in
// meta/revision and is written in the same transaction as the change, and
// the event for each change is written to events/ in that transaction too.
// Events older than the newest Options.HistoryLimit are deleted by the same
// transactions that add new ones, at most the number added plus 1024 per
// transaction, so compaction work stays bounded.
//
// Durability: the file is opened without NoSync, so a Create or Update that
// returned is on disk. NoFreelistSync is deliberately OFF, unlike
// containerd: without a synced freelist, bbolt 1.4 rebuilds it at Open by
// walking every page, and reports damage found on that walk by panicking in
// a goroutine of its own, where no recover can catch it — a corrupt file
// would crash the daemon instead of failing Open with a clear error. With
// the freelist synced, Open reads one page (in our goroutine, recovered)
// and restart stays cheap at 100k jobs; the cost is a few more bytes
// written per commit, which group commit amortises.
//
// # Watch
//
// Events are published only after their commit. A watcher first reads the
// retained history from events/ in short read transactions, on a goroutine
// of its own, then switches, under the lock the writer publishes under, to
// live events; the switch happens only once it has sent every published
// revision, and live events below the next revision it needs are skipped,
// so there is neither a gap nor a duplicate. A live watcher has no
// goroutine: the writer sends each event into its buffered channel
// (Options.WatchBuffer) without blocking, and all watchers share one copy of
// the job, so fan-out costs one channel send per watcher. The writer never
// waits for a watcher: one whose channel is full is ended
// (errdefs.ErrAborted, "resume from N", N being the last event it will
// still receive). Follow builds the API's streams on that: it resumes such a
// watcher from N itself, skips changes a snapshot (Snapshot) already sent,
// and ends when the jobs it waits for are done or its Stop channel closes,
// so a slow client still sees every change once, in order.
//
// Snapshot reads the jobs a page (List) at a time and sends each page
// before it reads the next, so a snapshot of 100k jobs holds one page, not
// every job. Each page is read at its own revision, later than the
// snapshot's: a job changed before its page was read is sent as changed,
// and Snapshot returns those jobs (only those) for Follow's Seen, so the
// follower skips the changes the snapshot already held. Seen thus holds
// the changes made during the snapshot, and Follow drops each entry once
// the stream has passed it.
//
// # Retention
//
// Finished jobs do not stay forever: RunRetention (the daemon's
// daemon.job_retention, 30 days by default) calls RemoveFinished every
// hour, which removes terminal jobs whose last change (UpdateTime) is older
// than the retention, in batches of at most MaxRemoveBatch, except the
// policy jobs a plan still reads (the newest CANCELLED or FAILED, and the
// newest SUCCEEDED, job of a policy, source image and destination region,
// until a newer one supersedes them; found through index/image), and the job
// a cancel tombstone names (the tombstone is lifted through it). Candidates are
// found in a read transaction through index/state (terminal states only),
// then one short write transaction re-checks each (a job retried meanwhile
// is no longer finished and stays), deletes jobs/<id>, every index entry
// indexKeys gives it and every requests/ record that names it, and deletes events/ up to the newest revision among
// the removed jobs, raising meta/compacted_revision to it. The indexes thus
// agree with jobs/ after every transaction, and events/ stays contiguous
// from compacted_revision+1, as Check verifies.
//
// A removal is not a change and has no event: the removed job is simply
// gone, from Get, List, and every retained event. A watcher that is live
// sees nothing; one that resumes, or is still reading history, from a
// revision the removal compacted gets ErrOutOfRange and lists again, like
// after ordinary history compaction. Those events are old anyway: a job's
// last revision is older than the retention, so compacting through it drops
// only events older than that. This keeps the Watch protocol unchanged (no
// delete event for clients to learn) and lets another backend implement
// RemoveFinished the same way (etcd: delete the keys, compact the revision).
//
// The removal transaction runs beside the writer goroutine, not through it:
// it takes no revision and publishes nothing, and bbolt serialises it with
// the writer's transactions. Deleting keys frees pages for reuse, so a
// file under steady churn stops growing; it never shrinks by itself
// (bbolt does not return pages to the filesystem). "replicatord compact",
// offline, rewrites it at its live size (Compact).
//
// # Corruption
//
// bbolt can panic, or fault on a truncated mmap, when it meets a corrupt
// page. Open, every read and every write transaction run with
// debug.SetPanicOnFault and recover(), and report errdefs.ErrDataLoss with
// the file path. Check runs this package's own consistency checks (records
// decode, indexes agree with jobs, revisions are consistent) after reading
// every page in its own goroutine, and only then bbolt's tx.Check, which
// would otherwise crash the process on a corrupt page.
package state
