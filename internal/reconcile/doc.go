// Package reconcile runs replication policies: a level-triggered loop per
// policy that, on the policy's interval and whenever it changes or is
// triggered, reads what is (source images, copies carrying the policy's
// lineage tags, the policy's jobs), asks policy.Plan what should change and
// acts — submitting copy and adoption jobs to the scheduler and deleting
// copies retention prunes.
//
// Each run re-reads everything, so a lost event, a restart or a copy deleted
// by hand is corrected on the next run (controller-runtime's "level-based"
// reconcile). Each policy has one goroutine, so runs of one policy never
// overlap; a trigger during a run makes exactly one more run after it
// (client-go workqueue's "dirty while processing" rule). A failed run is
// retried with backoff, never later than the interval, and one policy's
// errors never stop another.
//
// Nor does one region's: a destination whose listing fails transiently
// (cloud.ClassRetryable) is put in policy.Observed.Unlisted, so Plan plans
// nothing there (no copy, no prune, no Foreign: a partial view of a region
// is never acted on), and the run goes on for the others. The loop then
// retries that destination alone — the source and its own listing, the
// same observe and act, so every guarantee below holds — with its own
// capped backoff, on the same goroutine (never overlapping a run). Any
// other listing error (auth, forbidden, the source) fails the run as a
// configuration problem to report.
//
// The reconciler does no copying itself: the scheduler behind Jobs owns
// slots, rate limits, retries and post-copy actions. It calls only
// DescribeImages on the cloud; retention deletions go through Jobs.Prune,
// so that the scheduler's ownership guard (the proof from the store) is
// the one choke point of every image-changing call. What counts as ours is
// decided from the store too: observe looks up the job of every copy's
// job-id tag, and policy.Plan shows images it cannot prove as Foreign.
// New jobs are created with Jobs.SubmitPolicy, which refuses, in the same
// store transaction, pairs cancelled since the run listed ECS.
package reconcile
