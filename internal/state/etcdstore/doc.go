// Package etcdstore is a state.Store kept in etcd, for a highly available
// replicatord (issue 14): several replicas share one store, and a change is
// durable once the etcd quorum has committed it.
//
// # Key layout
//
// Every key lives under the store's prefix P (Options.Prefix, "/" added),
// so several stores can share a cluster:
//
//	P meta/revision                -> ""  (its ModRevision is the store's Revision)
//	P meta/compacted               -> decimal revision: Watch from below it is OUT_OF_RANGE
//	P jobs/<job id>                -> encoded job (state.EncodeJob; Revision is the key's ModRevision)
//	P active/<job id>              -> ""  (non-terminal jobs; Active reads only these)
//	P image/<source image id>\x00<job id> -> ""  (Reuse and retention find a pair's jobs)
//	P requests/<client request id> -> state.EncodeRequest of the record
//	P tombstones/<policy>\x00<source image id>\x00<destination region> -> JSON of job.Tombstone
//	P election/<lease id, hex>     -> candidate id (concurrency.Election; on the candidate's session lease)
//	P members/<member id>          -> JSON of Member (on the member's session lease)
//
// # Revisions and transactions
//
// A store's revisions are etcd's own: every change is ONE etcd transaction
// that writes the job, its index keys and meta/revision, so a job's
// Revision is its key's ModRevision and Revision() is meta/revision's.
// The jobs of one Create share the revision of their transaction (the
// Store contract allows it). Revisions are not dense: other stores on the
// cluster, and removals, take etcd revisions too.
//
// Every change is conditional: Update compares the job's ModRevision with
// the one it read (and the tombstone's, when it lifts one) and runs again
// on a conflict, so fn may run more than once, as Store documents; Create
// requires each job key to be absent (CreateRevision 0); CreateUnlessCancelled
// and CreateRequest compare the tombstones, request record and reused jobs
// they read. The rules themselves (validation, transitions, tombstones,
// what retention keeps) are state's exported helpers, shared with bbolt.
//
// A transaction holds up to about 4 operations per job; the cluster's
// --max-txn-ops (default 128) bounds how many jobs one Create or
// RemoveFinished may hold, and --max-request-bytes their size; a
// transaction over either is refused as errdefs.ErrInvalidArgument (it
// would be refused again: not ErrUnavailable, which callers retry).
// CreateUnlessCancelled (a policy run, one job per image and region, easily
// hundreds) is split into transactions of at most (Options.MaxTxnOps-2)/3
// jobs, 42 with etcd's default: each job stands alone there (its pair's
// tombstone is compared in the transaction that creates it), so a run
// stored in parts is as correct as one stored at once, and a run cut short
// by an error leaves jobs the next run's plan counts as in progress.
//
// # Watch
//
// Watch reads meta/ once and refuses a revision newer than the store's or
// older than meta/compacted (errdefs.ErrOutOfRange). Watchers share the
// store's hub (hub.go): one etcd watch of P jobs/, started from the first
// watcher's revision, whose changes are decoded once and handed to every
// watcher, with the last 4,096 kept so that a watcher starting a little
// behind (a list taken a moment ago, a stream resuming) joins it. Sends
// never block the hub: a watcher without room in its buffer (1,024) for a
// whole revision's changes is dropped with errdefs.ErrAborted and resumes
// from its last revision, as with bbolt; with a watch per watcher, a
// thousand Watch streams cost a thousand copies of every change on the
// wire and a thousand decodes. A watcher from before the hub's history
// runs an etcd watch of its own from fromRevision+1, which etcd serves
// from its history and then live. Either way changes come in revision
// order; deletes (removals) are not changes and are not sent. etcd's own
// compaction (the cluster's --auto-compaction-*) surfaces as ErrCompacted
// and becomes errdefs.ErrOutOfRange: the client lists again.
//
// # Retention
//
// RemoveFinished deletes the expired jobs (state.Expired, less those
// state.KeptForPlan keeps), their index keys and the request records that
// name them in one transaction conditional on each job's ModRevision, and
// raises meta/compacted to the newest removed job's revision, so a watcher
// resuming from before it lists again, as with bbolt. It does not compact
// etcd (a cluster-wide operation that belongs to the cluster's operator).
//
// # Leader election and fencing
//
// A replica's Elector is a concurrency.Session (a lease of TTL seconds,
// kept alive by the client) and a concurrency.Election on P election:
// the candidate whose key has the lowest CreateRevision leads. Campaign
// returns the store Fenced on that key: every write transaction of a
// fenced store also compares the key's CreateRevision, so that once the
// lease is gone (the leader crashed, was paused past its TTL, or was cut
// off from the quorum) every write fails with ErrLeadershipLost and
// changes nothing, even if the old leader has not noticed yet. The key
// holds the lease id, so a new leader's key is another key and a deleted
// one never comes back with the same CreateRevision. Because the
// scheduler writes a job's next state before the cloud call that depends
// on it (durable before acting), a refused write also stops the call.
// What fencing cannot stop is a call already in flight when the lease ran
// out: that CopyImage carries the job's ClientToken and lineage tags, so
// the new leader's retry of it is answered with the same copy (ECS
// deduplicates by ClientToken) and a copy made anyway is found by its tags
// and adopted, never made twice nor left untracked.
//
// Members register under P members/ on their own session lease, so a
// replica that is gone disappears from the list within its TTL.
//
// # What is not done yet
//
// List filters by reading every job at one revision (newest first, by key)
// and applying the filter; only Active and Reuse read through an index.
// RemoveFinished reads every job to plan. Both are fine at tens of
// thousands of jobs and are the first things to index if needed.
package etcdstore
