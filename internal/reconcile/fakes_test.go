package reconcile

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/job"
)

// fakeCloud is an in-memory cloud.Provider: the boundary of this engine
// test, as a fake clock is for time. It filters DescribeImages the way ECS
// does (ids, statuses with Available as the default, tags) and counts calls.
type fakeCloud struct {
	mu     sync.Mutex
	images map[string][]cloud.Image // region -> images
	calls  map[string]int           // action -> count
	fail   map[string]error         // region -> error for DescribeImages there
	delErr error
}

func newFakeCloud(images ...cloud.Image) *fakeCloud {
	c := &fakeCloud{images: map[string][]cloud.Image{}, calls: map[string]int{}, fail: map[string]error{}}
	for _, im := range images {
		c.images[im.Region] = append(c.images[im.Region], im)
	}
	return c
}

func (c *fakeCloud) add(im cloud.Image) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images[im.Region] = append(c.images[im.Region], im)
}

func (c *fakeCloud) remove(region, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep []cloud.Image
	for _, im := range c.images[region] {
		if im.ID != id {
			keep = append(keep, im)
		}
	}
	c.images[region] = keep
}

func (c *fakeCloud) setFail(region string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail[region] = err
}

func (c *fakeCloud) count(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[action]
}

func (c *fakeCloud) DescribeImages(ctx context.Context, q cloud.ImageQuery) ([]cloud.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["DescribeImages"]++
	if err := c.fail[q.Region]; err != nil {
		return nil, err
	}
	if len(q.IDs) > cloud.MaxIDsPerDescribe {
		return nil, &cloud.Error{Action: "DescribeImages", Region: q.Region, Code: "InvalidParameter", Class: cloud.ClassPermanent}
	}
	statuses := q.Statuses
	if len(statuses) == 0 {
		statuses = []string{cloud.StatusAvailable}
	}
	var out []cloud.Image
	for _, im := range c.images[q.Region] {
		if len(q.IDs) > 0 && !contains(q.IDs, im.ID) || !contains(statuses, im.Status) {
			continue
		}
		ok := true
		for k, v := range q.Tags {
			if im.Tags[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, clone(im))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTime.After(out[j].CreationTime) })
	return out, nil
}

func (c *fakeCloud) DeleteImage(ctx context.Context, region, id string) error {
	c.mu.Lock()
	c.calls["DeleteImage"]++
	err := c.delErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.remove(region, id)
	return nil
}

var errNotForReconciler = errors.New("the reconciler must not call this")

func (c *fakeCloud) note(action string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[action]++
	return errNotForReconciler
}

func (c *fakeCloud) CopyImage(context.Context, cloud.CopyRequest) (string, error) {
	return "", c.note("CopyImage")
}
func (c *fakeCloud) CancelCopyImage(context.Context, string, string) error {
	return c.note("CancelCopyImage")
}
func (c *fakeCloud) DescribeRegions(context.Context) ([]cloud.Region, error) {
	return nil, c.note("DescribeRegions")
}
func (c *fakeCloud) TagImages(context.Context, string, []string, map[string]string) error {
	return c.note("TagImages")
}
func (c *fakeCloud) SetImageFamily(context.Context, string, string, string) error {
	return c.note("SetImageFamily")
}
func (c *fakeCloud) ShareImage(context.Context, string, string, []string) error {
	return c.note("ShareImage")
}

func (c *fakeCloud) UnshareImage(context.Context, string, string, []string) error {
	return c.note("UnshareImage")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clone(im cloud.Image) cloud.Image {
	tags := make(map[string]string, len(im.Tags))
	for k, v := range im.Tags {
		tags[k] = v
	}
	im.Tags = tags
	return im
}

// fakeJobs is the scheduler's side: it stores submitted jobs. gate, when
// set, blocks PolicyJobs until a value is sent, so tests can hold a run in
// the middle; active counts runs inside PolicyJobs per policy.
type fakeJobs struct {
	mu        sync.Mutex
	jobs      []*job.Job
	submitErr error
	listErr   map[string]error
	gate      chan struct{}
	entered   chan string
	active    map[string]int
	maxActive map[string]int
	tombs     map[string]job.Tombstone
	cloud     *fakeCloud // for Prune
}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{listErr: map[string]error{}, active: map[string]int{}, maxActive: map[string]int{}, tombs: map[string]job.Tombstone{}}
}

func (f *fakeJobs) PolicyJobs(ctx context.Context, policy string) ([]*job.Job, error) {
	f.mu.Lock()
	f.active[policy]++
	if f.active[policy] > f.maxActive[policy] {
		f.maxActive[policy] = f.active[policy]
	}
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active[policy]--
		f.mu.Unlock()
	}()
	if entered != nil {
		entered <- policy
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.listErr[policy]; err != nil {
		return nil, err
	}
	var out []*job.Job
	for _, j := range f.jobs {
		if j.Policy == policy {
			out = append(out, j.Clone())
		}
	}
	return out, nil
}

func (f *fakeJobs) Submit(ctx context.Context, jobs ...*job.Job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submitErr != nil {
		return f.submitErr
	}
	for _, j := range jobs {
		f.jobs = append(f.jobs, j.Clone())
	}
	return nil
}

func (f *fakeJobs) Job(ctx context.Context, id string) (*job.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.ID == id {
			return j.Clone(), nil
		}
	}
	return nil, errdefs.ErrNotFound
}

func (f *fakeJobs) Tombstones(ctx context.Context, policy string) ([]job.Tombstone, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []job.Tombstone
	for _, t := range f.tombs {
		if t.Policy == policy {
			out = append(out, t)
		}
	}
	return out, nil
}

// SubmitPolicy checks the tombstones under the same lock as the insert,
// as the store does in one transaction.
func (f *fakeJobs) SubmitPolicy(ctx context.Context, jobs ...*job.Job) ([]job.Tombstone, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submitErr != nil {
		return nil, f.submitErr
	}
	var skipped []job.Tombstone
	for _, j := range jobs {
		if t, ok := f.tombs[job.TombstoneKey(j.Policy, j.SourceImageID, j.DestinationRegion)]; ok {
			skipped = append(skipped, t)
			continue
		}
		f.jobs = append(f.jobs, j.Clone())
	}
	return skipped, nil
}

func (f *fakeJobs) Prune(ctx context.Context, jobID, imageID, reason string, unshare []string, allowAdopted bool) error {
	f.mu.Lock()
	var j *job.Job
	for _, x := range f.jobs {
		if x.ID == jobID {
			j = x
		}
	}
	f.mu.Unlock()
	if j == nil || j.DestinationImageID != imageID || j.State != job.StateSucceeded || (j.Adopted && !allowAdopted) {
		return errors.New("not proven ours")
	}
	if len(unshare) > 0 {
		if err := f.cloud.UnshareImage(ctx, j.DestinationRegion, imageID, unshare); err != nil {
			return err
		}
	}
	if err := f.cloud.DeleteImage(ctx, j.DestinationRegion, imageID); err != nil {
		return err
	}
	f.mu.Lock()
	j.State = job.StatePruned
	j.PruneReason = reason
	f.mu.Unlock()
	return nil
}

func (f *fakeJobs) CopyGone(ctx context.Context, jobID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.ID == jobID && j.State == job.StateSucceeded {
			j.State = job.StatePruned
			j.PruneReason = "gone"
		}
	}
	return nil
}

// cancel cancels j as the scheduler would, with its tombstone.
func (f *fakeJobs) cancel(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.ID == id {
			j.State = job.StateCancelled
			j.CancelRequested = true
			f.tombs[job.TombstoneKey(j.Policy, j.SourceImageID, j.DestinationRegion)] = job.Tombstone{
				Policy: j.Policy, SourceImageID: j.SourceImageID, DestinationRegion: j.DestinationRegion, JobID: j.ID, By: "test"}
		}
	}
}

func (f *fakeJobs) all() []*job.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*job.Job, len(f.jobs))
	for i, j := range f.jobs {
		out[i] = j.Clone()
	}
	return out
}

// finish marks every job done as the scheduler would: the copy exists,
// Available, with its lineage tags, and the job succeeded.
func (f *fakeJobs) finish(c *fakeCloud) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.State.Terminal() {
			continue
		}
		if j.DestinationImageID == "" {
			j.DestinationImageID = "m-copy-" + j.ID[len(j.ID)-8:]
			j.Attempts = 1
			tags := map[string]string{job.TagJobID: j.ID, job.TagSourceImage: j.SourceImageID,
				job.TagSourceRegion: j.SourceRegion, job.TagAttempt: "1", job.TagOwner: job.DefaultOwner}
			for k, v := range j.Tags {
				tags[k] = v
			}
			c.add(cloud.Image{ID: j.DestinationImageID, Region: j.DestinationRegion, Name: j.DestinationImageName,
				Status: cloud.StatusAvailable, SizeGiB: j.SizeGiB, CreationTime: j.CreateTime, IsCopied: true, Tags: tags})
		}
		j.State = job.StateSucceeded
	}
}
