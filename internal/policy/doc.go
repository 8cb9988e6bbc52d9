// Package policy reads replicatord's one configuration file (daemon
// settings, cloud, scheduler knobs and the replication policies) and turns
// a policy plus what the cloud shows into a plan.
//
// Reading is strict and exhaustive. The file is parsed into a yaml.Node tree
// and walked by hand rather than decoded into structs, for three reasons:
// every problem keeps the line and column of the node at fault, every
// problem of the file is reported at once (a user fixes a file in one pass),
// and aliases are expanded under a budget, so a "billion laughs" file is
// refused instead of exhausting memory. Secrets are refused wherever they
// appear and are never echoed in an error.
//
// Planning is pure: Plan takes what a reconciler observed (source images,
// copies carrying this policy's lineage tags, the policy's jobs) and returns
// one Item per source image × destination region, plus Prune items for
// retention. The reconciler (internal/reconcile) and the PlanPolicies dry
// run share it, so a dry run shows exactly what a run would do.
package policy
