package policy

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// planPolicy copies golden images to two regions.
const planPolicy = `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, cn-beijing]
    copy: {name: "{{.SourceName}}-copy"}
    max_size_gib: 200
`

var golden = map[string]string{"role": "golden"}

// copyOf is a copy of src in region made by policy p.
func copyOf(id string, src cloud.Image, region, status string) cloud.Image {
	return cloud.Image{ID: id, Region: region, Name: src.Name + "-copy", Status: status, SizeGiB: src.SizeGiB,
		CreationTime: src.CreationTime.Add(time.Hour), IsCopied: true,
		Tags: map[string]string{job.TagPolicy: "p", job.TagSourceImage: src.ID, job.TagSourceRegion: "cn-hangzhou"}}
}

func jobFor(id string, src cloud.Image, region string, state job.State, copyID string) *job.Job {
	return &job.Job{ID: id, Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: src.ID, SourceImageName: src.Name,
		DestinationRegion: region, DestinationImageID: copyID, DestinationImageName: src.Name + "-copy", State: state,
		CreateTime: t0}
}

// lines prints a plan one item per line, for exact comparison.
func lines(items []Item) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s %s>%s %s", it.Action, it.SourceImageID, it.DestinationRegion, it.DestinationImageName)
		if it.DestinationImageID != "" {
			fmt.Fprintf(&b, " [%s]", it.DestinationImageID)
		}
		if it.Reason != "" {
			fmt.Fprintf(&b, " (%s)", it.Reason)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// withProof gives obs what the store would prove: every copy that one of
// the jobs (obs.Jobs and extra) records gets that job's id and this
// installation's owner as tags, and the job is Known. Copies no job
// records keep their tags (partial: no job id).
func withProof(obs Observed, extra ...*job.Job) Observed {
	if obs.Owner == "" {
		obs.Owner = job.DefaultOwner
	}
	all := append(append([]*job.Job(nil), obs.Jobs...), extra...)
	known := map[string]*job.Job{}
	for k, v := range obs.Known {
		known[k] = v
	}
	copies := map[string][]cloud.Image{}
	for region, ims := range obs.Copies {
		for _, im := range ims {
			im.Tags = maps.Clone(im.Tags)
			for _, j := range all {
				if j.DestinationImageID == im.ID && j.DestinationRegion == region && im.Tags[job.TagJobID] == "" {
					im.Tags[job.TagJobID] = j.ID
					im.Tags[job.TagOwner] = obs.Owner
					known[j.ID] = j
				}
			}
			copies[region] = append(copies[region], im)
		}
	}
	obs.Copies, obs.Known = copies, known
	return obs
}

func checkPlan(t *testing.T, p *Policy, obs Observed, want string, extra ...*job.Job) {
	t.Helper()
	got := lines(p.Plan(withProof(obs, extra...)))
	want = strings.TrimLeft(want, "\n")
	if got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanCopiesWhatIsMissing(t *testing.T) {
	p := mustPolicy(t, planPolicy)
	a := img("m-a", "golden-a", 1, golden)
	b := img("m-b", "golden-b", 2, golden)
	other := img("m-o", "app", 3, map[string]string{"role": "app"})
	items := p.Plan(Observed{Sources: []cloud.Image{a, b, other}})
	checkPlan(t, p, Observed{Sources: []cloud.Image{a, b, other}}, `
copy m-b>cn-shanghai golden-b-copy
copy m-b>cn-beijing golden-b-copy
copy m-a>cn-shanghai golden-a-copy
copy m-a>cn-beijing golden-a-copy
`)
	if items[0].Policy != "p" || items[0].SizeGiB != 40 || items[0].SourceImageName != "golden-b" {
		t.Errorf("item = %+v", items[0])
	}
}

func TestPlanStates(t *testing.T) {
	p := mustPolicy(t, planPolicy)
	a := img("m-a", "golden-a", 1, golden)
	b := img("m-b", "golden-b", 2, golden)
	c := img("m-c", "golden-c", 3, golden)
	d := img("m-d", "golden-d", 4, golden)
	obs := Observed{
		Sources: []cloud.Image{a, b, c, d},
		Copies: map[string][]cloud.Image{
			"cn-shanghai": {
				copyOf("m-sa", a, "cn-shanghai", cloud.StatusAvailable),    // made by a succeeded job
				copyOf("m-sb", b, "cn-shanghai", cloud.StatusCreating),     // no job tracks it
				copyOf("m-sc", c, "cn-shanghai", cloud.StatusAvailable),    // no job tracks it
				copyOf("m-sd", d, "cn-shanghai", cloud.StatusCreateFailed), // failed
			},
			"cn-beijing": {
				copyOf("m-bb", b, "cn-beijing", cloud.StatusWaiting),    // tracked by an active job
				copyOf("m-bd", d, "cn-beijing", cloud.StatusDeprecated), // deprecated by a user
			},
		},
		Jobs: []*job.Job{
			jobFor("j-1", a, "cn-shanghai", job.StateSucceeded, "m-sa"),
			jobFor("j-2", a, "cn-beijing", job.StateSucceeded, "m-gone"), // copy deleted by hand
			jobFor("j-3", b, "cn-beijing", job.StateWaiting, "m-bb"),
			jobFor("j-4", c, "cn-beijing", job.StateQueued, ""),
			{ID: "j-5", Policy: "p", SourceRegion: "cn-hangzhou", SourceImageID: "m-d", DestinationRegion: "cn-shanghai", State: job.StateFailed,
				DestinationImageName: "golden-d-copy", CloudStatus: cloud.StatusCreateFailed, DestinationImageID: "m-sd",
				Error: &job.Error{Code: "CreateFailed", Message: "the copy failed"}, CreateTime: t0},
			{ID: "j-x", Policy: "other", SourceImageID: "m-d", DestinationRegion: "cn-beijing", State: job.StateCopying},
		},
	}
	checkPlan(t, p, obs, `
copy m-d>cn-shanghai golden-d-copy
copy m-d>cn-beijing golden-d-copy
copy m-c>cn-shanghai golden-c-copy
in-progress m-c>cn-beijing golden-c-copy (job j-4 is QUEUED)
copy m-b>cn-shanghai golden-b-copy
in-progress m-b>cn-beijing golden-b-copy [m-bb] (job j-3 is WAITING)
exists m-a>cn-shanghai golden-a-copy [m-sa]
copy m-a>cn-beijing golden-a-copy (the copy made by job j-2 is gone)
foreign m-d>cn-beijing golden-d-copy [m-bd] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
foreign m-b>cn-shanghai golden-b-copy [m-sb] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
foreign m-c>cn-shanghai golden-c-copy [m-sc] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
foreign m-d>cn-shanghai golden-d-copy [m-sd] (job j-5 is FAILED; its copy is left alone)
`)
	// The copy made by j-2 is gone: the item names the job, to be PRUNED.
	for _, it := range p.Plan(withProof(obs)) {
		if it.SourceImageID == "m-a" && it.DestinationRegion == "cn-beijing" && it.JobID != "j-2" {
			t.Errorf("item for the gone copy names job %q, want j-2", it.JobID)
		}
	}
}

func TestPlanBlocked(t *testing.T) {
	p := mustPolicy(t, planPolicy)
	big := img("m-big", "golden-big", 5, golden)
	big.SizeGiB = 250
	creating := img("m-new", "golden-new", 6, golden)
	creating.Status = cloud.StatusCreating
	bad := img("m-bad", "9-bad-name", 4, golden)
	refused := img("m-ref", "golden-ref", 3, golden)
	cancelled := img("m-can", "golden-can", 2, golden)
	manyTags := img("m-tags", "golden-tags", 1, map[string]string{"role": "golden"})
	for i := 0; i < 18; i++ {
		manyTags.Tags[fmt.Sprintf("k%d", i)] = "v"
	}
	p.Copy.CopySourceTags = true
	refusedJob := jobFor("j-r", refused, "cn-shanghai", job.StateFailed, "")
	refusedJob.Error = &job.Error{Code: "OperationDenied.NonCompliantDestinationRegion", Message: "not in compliance"}
	// The same refusal with a request the policy no longer makes: copy again.
	oldJob := jobFor("j-o", refused, "cn-beijing", job.StateFailed, "")
	oldJob.DestinationImageName = "old-name"
	oldJob.Error = refusedJob.Error
	// A retryable failure (attempts ran out): copy again.
	cancelledJob := jobFor("j-c", cancelled, "cn-shanghai", job.StateCancelled, "")
	retryJob := jobFor("j-t", cancelled, "cn-beijing", job.StateFailed, "")
	retryJob.Error = &job.Error{Code: "InternalError", Retryable: true}
	// A source tag with a control character is never sent to ECS.
	ctrl := img("m-ctl", "golden-ctl", 0, map[string]string{"role": "golden", "note": "a\x1bb"})
	obs := Observed{Sources: []cloud.Image{big, creating, bad, refused, cancelled, manyTags, ctrl},
		Jobs: []*job.Job{refusedJob, oldJob, cancelledJob, retryJob}}
	checkPlan(t, p, obs, `
blocked m-new>cn-shanghai golden-new-copy (source is Creating, not Available)
blocked m-new>cn-beijing golden-new-copy (source is Creating, not Available)
blocked m-big>cn-shanghai golden-big-copy (source is 250 GiB, above max_size_gib 200 (ECS wants a ticket / SizeExceed.Image))
blocked m-big>cn-beijing golden-big-copy (source is 250 GiB, above max_size_gib 200 (ECS wants a ticket / SizeExceed.Image))
blocked m-bad>cn-shanghai  (copy.name renders "9-bad-name-copy", which is not a valid ECS image name: it must start with a letter and hold only letters, digits, ".", ":", "_" and "-")
blocked m-bad>cn-beijing  (copy.name renders "9-bad-name-copy", which is not a valid ECS image name: it must start with a letter and hold only letters, digits, ".", ":", "_" and "-")
blocked m-ref>cn-shanghai golden-ref-copy (job j-r failed: OperationDenied.NonCompliantDestinationRegion: not in compliance; change the policy or retry the job)
copy m-ref>cn-beijing golden-ref-copy
blocked m-can>cn-shanghai golden-can-copy (job j-c was cancelled; retry it to copy again)
copy m-can>cn-beijing golden-can-copy
blocked m-tags>cn-shanghai golden-tags-copy (the copy would carry 24 tags (source tags, copy.tags and 5 lineage tags), more than the 20 ECS accepts)
blocked m-tags>cn-beijing golden-tags-copy (the copy would carry 24 tags (source tags, copy.tags and 5 lineage tags), more than the 20 ECS accepts)
blocked m-ctl>cn-shanghai golden-ctl-copy (source tag: the value of tag "note" contains the control character U+001B at byte 1 (control characters, NUL included, are not allowed))
blocked m-ctl>cn-beijing golden-ctl-copy (source tag: the value of tag "note" contains the control character U+001B at byte 1 (control characters, NUL included, are not allowed))
`)
}

func TestPlanNeverTwoCopies(t *testing.T) {
	p := mustPolicy(t, planPolicy)
	a := img("m-a", "golden-a", 1, golden)
	// Two copies of one source in one region that no job records (made by
	// hand with the policy's tags): foreign, so the policy makes its own;
	// two active jobs in the other region: one item, never a Copy.
	c1 := copyOf("m-c1", a, "cn-shanghai", cloud.StatusCreating)
	c2 := copyOf("m-c2", a, "cn-shanghai", cloud.StatusAvailable)
	j1 := jobFor("j-1", a, "cn-beijing", job.StateCopying, "m-x")
	j2 := jobFor("j-2", a, "cn-beijing", job.StateQueued, "")
	j2.CreateTime = t0.Add(time.Minute)
	checkPlan(t, p, Observed{Sources: []cloud.Image{a, a}, Copies: map[string][]cloud.Image{"cn-shanghai": {c1, c2}},
		Jobs: []*job.Job{j2, j1}}, `
copy m-a>cn-shanghai golden-a-copy
in-progress m-a>cn-beijing golden-a-copy [m-x] (job j-1 is COPYING)
foreign m-a>cn-shanghai golden-a-copy [m-c1] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
foreign m-a>cn-shanghai golden-a-copy [m-c2] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
`)
}

func TestPlanRetention(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai]
    copy: {name: "{{.SourceName}}-copy"}
    retention: {keep_last: 2}
`)
	s1 := img("m-1", "golden-1", 1, golden)
	s2 := img("m-2", "golden-2", 2, golden)
	s3 := img("m-3", "golden-3", 3, golden)
	s4 := img("m-4", "golden-4", 4, golden)
	gone := img("m-0", "golden-0", 0, golden) // the source was deleted: only its copy remains
	region := "cn-shanghai"
	jobs := []*job.Job{
		jobFor("j-1", s1, region, job.StateSucceeded, "m-c1"),
		jobFor("j-2", s2, region, job.StateSucceeded, "m-c2"),
		jobFor("j-3", s3, region, job.StateSucceeded, "m-c3"),
	}
	// The orphan's job (its source is gone); not among the latest jobs
	// PolicyJobs returns for the listed sources, but the store knows it.
	orphanJob := jobFor("j-0", gone, region, job.StateSucceeded, "m-c0")
	copies := []cloud.Image{
		copyOf("m-c0", gone, region, cloud.StatusAvailable),
		copyOf("m-c1", s1, region, cloud.StatusAvailable),
		copyOf("m-c2", s2, region, cloud.StatusAvailable),
		copyOf("m-c3", s3, region, cloud.StatusAvailable),
	}
	// s4 arrives: keep s4 and s3, copy s4; prune the copies of s2, s1 and
	// the orphan. The newest Available copy (s3's) is kept anyway.
	checkPlan(t, p, Observed{Sources: []cloud.Image{s1, s2, s3, s4}, Copies: map[string][]cloud.Image{region: copies}, Jobs: jobs}, `
copy m-4>cn-shanghai golden-4-copy
exists m-3>cn-shanghai golden-3-copy [m-c3]
prune m-2>cn-shanghai golden-2-copy [m-c2] (retention keeps the copies of the 2 newest sources)
prune m-1>cn-shanghai golden-1-copy [m-c1] (retention keeps the copies of the 2 newest sources)
prune m-0>cn-shanghai golden-0-copy [m-c0] (retention keeps the copies of the 2 newest sources)
`, orphanJob)

	// Never the newest Available copy, never one still copying, never one
	// a job works on: with s3 and s4 still copying, s2's copy is the newest
	// Available one and stays; s1's copy is Creating and stays.
	copies = []cloud.Image{
		copyOf("m-c0", gone, region, cloud.StatusAvailable),
		copyOf("m-c1", s1, region, cloud.StatusCreating),
		copyOf("m-c2", s2, region, cloud.StatusAvailable),
		copyOf("m-c3", s3, region, cloud.StatusCreating),
		copyOf("m-c4", s4, region, cloud.StatusWaiting),
	}
	active := []*job.Job{
		jobFor("j-3", s3, region, job.StateCopying, "m-c3"),
		jobFor("j-4", s4, region, job.StateWaiting, "m-c4"),
	}
	checkPlan(t, p, Observed{Sources: []cloud.Image{s1, s2, s3, s4}, Copies: map[string][]cloud.Image{region: copies}, Jobs: active}, `
in-progress m-4>cn-shanghai golden-4-copy [m-c4] (job j-4 is WAITING)
in-progress m-3>cn-shanghai golden-3-copy [m-c3] (job j-3 is COPYING)
prune m-0>cn-shanghai golden-0-copy [m-c0] (retention keeps the copies of the 2 newest sources)
`, append(jobs, orphanJob)...)

	// Fewer selected sources than keep_last: the newest copies of sources
	// no longer selected fill the remaining slots.
	checkPlan(t, p, Observed{Sources: []cloud.Image{s3}, Copies: map[string][]cloud.Image{region: {
		copyOf("m-c0", gone, region, cloud.StatusAvailable),
		copyOf("m-c1", s1, region, cloud.StatusAvailable),
		copyOf("m-c3", s3, region, cloud.StatusAvailable),
	}}, Jobs: jobs}, `
exists m-3>cn-shanghai golden-3-copy [m-c3]
prune m-0>cn-shanghai golden-0-copy [m-c0] (retention keeps the copies of the 2 newest sources)
`, orphanJob)
}

func TestPlanRetentionPerFamily(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai]
    copy: {name: "{{.SourceName}}-copy"}
    retention: {keep_last: 1, per_family: true}
`)
	fam := func(im cloud.Image, f string) cloud.Image { im.Family = f; return im }
	u1 := fam(img("m-u1", "ubuntu-1", 1, golden), "ubuntu")
	u2 := fam(img("m-u2", "ubuntu-2", 5, golden), "ubuntu")
	r1 := fam(img("m-r1", "rocky-1", 2, golden), "rocky")
	n1 := img("m-n1", "nofamily-1", 3, golden)
	region := "cn-shanghai"
	// A copy of a deleted rocky source, newer than r1: it carries its family.
	orphan := copyOf("m-co", fam(img("m-r0", "rocky-0", 9, golden), ""), region, cloud.StatusAvailable)
	orphan.Family = "rocky"
	copies := []cloud.Image{
		copyOf("m-cu1", u1, region, cloud.StatusAvailable),
		copyOf("m-cu2", u2, region, cloud.StatusAvailable),
		copyOf("m-cr1", r1, region, cloud.StatusAvailable),
		orphan,
	}
	jobs := []*job.Job{
		jobFor("j-1", u1, region, job.StateSucceeded, "m-cu1"),
		jobFor("j-2", u2, region, job.StateSucceeded, "m-cu2"),
		jobFor("j-3", r1, region, job.StateSucceeded, "m-cr1"),
	}
	orphanJob := jobFor("j-0", img("m-r0", "rocky-0", 9, golden), region, job.StateSucceeded, "m-co")
	// One source of each family is kept: u2, n1 (no family) and r1; u1's
	// copy and the rocky orphan are pruned.
	checkPlan(t, p, Observed{Sources: []cloud.Image{u1, u2, r1, n1}, Copies: map[string][]cloud.Image{region: copies}, Jobs: jobs}, `
exists m-u2>cn-shanghai ubuntu-2-copy [m-cu2]
copy m-n1>cn-shanghai nofamily-1-copy
exists m-r1>cn-shanghai rocky-1-copy [m-cr1]
prune m-r0>cn-shanghai rocky-0-copy [m-co] (retention keeps the copies of the newest source of each family)
prune m-u1>cn-shanghai ubuntu-1-copy [m-cu1] (retention keeps the copies of the newest source of each family)
`, orphanJob)
}

func TestActionNames(t *testing.T) {
	// The numbers are replicator.v1.PlanAction's.
	for a, want := range map[Action]int{ActionCopy: 1, ActionExists: 2, ActionAdopt: 3, ActionPrune: 4, ActionBlocked: 5, ActionInProgress: 6, ActionForeign: 7, ActionSkippedCancelled: 8} {
		if int(a) != want {
			t.Errorf("%s = %d, want %d", a, int(a), want)
		}
	}
	if Action(42).String() != "Action(42)" {
		t.Error(Action(42).String())
	}
}

func TestNewJobAndAdoptJob(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, {region: cn-beijing, encrypted: true, kms_key_id: key-1}]
    copy: {description: "from {{.SourceRegion}}", image_family: inherit, share_with_accounts: ["123"]}
    priority: 7
`)
	src := img("m-a", "golden-a", 1, golden)
	src.Family = "fam"
	dst, _ := p.Destination("cn-beijing")
	now := t0.Add(time.Hour)
	j, err := p.NewJob(src, dst, now)
	if err != nil {
		t.Fatal(err)
	}
	if !job.ValidID(j.ID) || j.Policy != "p" || j.Priority != 7 || j.State != job.StateQueued ||
		j.SourceRegion != "cn-hangzhou" || j.SourceImageID != "m-a" || j.SourceImageName != "golden-a" || j.SizeGiB != 40 ||
		j.DestinationRegion != "cn-beijing" || j.DestinationImageName != "golden-a" || j.DestinationDescription != "from cn-hangzhou" ||
		!j.Encrypted || j.KMSKeyID != "key-1" || j.ImageFamily != "fam" || len(j.ShareAccounts) != 1 ||
		j.Tags[job.TagPolicy] != "p" || !j.CreateTime.Equal(now) {
		t.Errorf("job = %+v", j)
	}
	c := copyOf("m-c", src, "cn-beijing", cloud.StatusWaiting)
	a := p.AdoptJob(src, dst, c, now)
	if a.DestinationImageID != "m-c" || a.DestinationImageName != "golden-a-copy" || a.State != job.StateWaiting || a.CloudStatus != "Waiting" {
		t.Errorf("adopt = %+v", a)
	}
	c.Status = cloud.StatusAvailable
	if a := p.AdoptJob(src, dst, c, now); a.State != job.StateCopying {
		t.Errorf("adopting an Available copy: state %s", a.State)
	}
}

// TestPlanOwnership: only copies the store proves ours count; the others
// are Foreign with the reason and never pruned; adopted copies are pruned
// only with prune_adopted; a cancelled pair is skipped.
func TestPlanOwnership(t *testing.T) {
	body := `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai]
    copy: {name: "{{.SourceName}}-copy"}
    retention: {keep_last: 2%s}
`
	p := mustPolicy(t, fmt.Sprintf(body, ""))
	region := "cn-shanghai"
	s1 := img("m-1", "golden-1", 1, golden)
	s2 := img("m-2", "golden-2", 2, golden)
	s3 := img("m-3", "golden-3", 3, golden)
	s4 := img("m-4", "golden-4", 4, golden)
	j4 := jobFor("j-4", s4, region, job.StateSucceeded, "m-c4")
	j1 := jobFor("j-1", s1, region, job.StateSucceeded, "m-c1")
	j2 := jobFor("j-2", s2, region, job.StateSucceeded, "m-c2")
	j2.Adopted, j2.AdoptionReason = true, "found by tags"
	mine := func(id string, src cloud.Image, j *job.Job) cloud.Image {
		c := copyOf(id, src, region, cloud.StatusAvailable)
		c.Tags[job.TagJobID], c.Tags[job.TagOwner], c.Tags[job.TagAttempt] = j.ID, job.DefaultOwner, "1"
		return c
	}
	forged := mine("m-forged", s1, j1) // the daemon's complete tag set on a hand-made image
	other := mine("m-other", s1, j1)
	other.Tags[job.TagOwner] = "team-b"
	unknown := copyOf("m-unknown", s1, region, cloud.StatusAvailable)
	unknown.Tags[job.TagJobID], unknown.Tags[job.TagOwner] = "j-nobody", job.DefaultOwner
	legacy := copyOf("m-c1", s1, region, cloud.StatusAvailable) // no owner tag: made before it existed
	legacy.Tags[job.TagJobID] = "j-1"
	obs := Observed{Sources: []cloud.Image{s1, s2, s3, s4}, Owner: job.DefaultOwner,
		Copies: map[string][]cloud.Image{region: {legacy, mine("m-c2", s2, j2), forged, other, unknown, mine("m-c4", s4, j4)}},
		Jobs:   []*job.Job{j1, j2, j4},
		Known:  map[string]*job.Job{"j-1": j1, "j-2": j2, "j-4": j4},
		Tombstones: []job.Tombstone{{Policy: "p", SourceImageID: "m-3", DestinationRegion: region, JobID: "j-3",
			By: "api (unix socket)", Time: t0}}}
	// keep_last 2 keeps s4 and s3 (cancelled: skipped, not copied).
	want := `
exists m-4>cn-shanghai golden-4-copy [m-c4]
skipped-cancelled m-3>cn-shanghai  (job j-3 was cancelled by api (unix socket) at 2026-11-01T00:00:00Z; retry it to copy again)
foreign m-1>cn-shanghai golden-1-copy [m-forged] (job j-1's copy is m-c1, not this image)
foreign m-1>cn-shanghai golden-1-copy [m-other] (owned by installation "team-b" (replicatord:owner), not "replicatord")
foreign m-1>cn-shanghai golden-1-copy [m-unknown] (job j-nobody is not in this installation's store)
exists m-2>cn-shanghai golden-2-copy [m-c2] (adopted by job j-2; retention would prune it but retention.prune_adopted is false)
prune m-1>cn-shanghai golden-1-copy [m-c1] (retention keeps the copies of the 2 newest sources)
`
	got := lines(p.Plan(obs))
	if got != strings.TrimLeft(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", got, strings.TrimLeft(want, "\n"))
	}
	for _, it := range p.Plan(obs) {
		if it.Action == ActionPrune && it.JobID != "j-1" {
			t.Errorf("prune of %s names job %q, want j-1 (the proof the scheduler checks)", it.DestinationImageID, it.JobID)
		}
	}

	// With prune_adopted the adopted copy is pruned too.
	p = mustPolicy(t, fmt.Sprintf(body, ", prune_adopted: true"))
	pruned := map[string]bool{}
	for _, it := range p.Plan(obs) {
		if it.Action == ActionPrune {
			pruned[it.DestinationImageID] = true
		}
	}
	if !pruned["m-c2"] || !pruned["m-c1"] || len(pruned) != 2 {
		t.Errorf("pruned with prune_adopted = %v, want m-c1 and m-c2", pruned)
	}
}

// TestPlanLiftedCancel: a cancelled job blocks its pair until the cancel
// is lifted (a retry, or a policy change that names the image).
func TestPlanLiftedCancel(t *testing.T) {
	p := mustPolicy(t, planPolicy)
	p.Destinations = p.Destinations[:1]
	a := img("m-a", "golden-a", 1, golden)
	j := jobFor("j-c", a, "cn-shanghai", job.StateCancelled, "")
	checkPlan(t, p, Observed{Sources: []cloud.Image{a}, Jobs: []*job.Job{j}}, `
blocked m-a>cn-shanghai golden-a-copy (job j-c was cancelled; retry it to copy again)
`)
	j.CancelLifted = "policy p changed"
	checkPlan(t, p, Observed{Sources: []cloud.Image{a}, Jobs: []*job.Job{j}}, `
copy m-a>cn-shanghai golden-a-copy
`)
}

func TestPlanUnlistedDestination(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, cn-beijing]
    copy: {name: "{{.SourceName}}-copy"}
    retention: {keep_last: 1}
`)
	s0 := img("m-0", "golden-0", 0, golden)
	s1 := img("m-1", "golden-1", 1, golden)
	s2 := img("m-2", "golden-2", 2, golden)
	var jobs []*job.Job
	copies := map[string][]cloud.Image{}
	for _, r := range []string{"cn-shanghai", "cn-beijing"} {
		jobs = append(jobs, jobFor("j0-"+r, s0, r, job.StateSucceeded, "m-c0-"+r), jobFor("j1-"+r, s1, r, job.StateSucceeded, "m-c1-"+r))
		copies[r] = []cloud.Image{copyOf("m-c0-"+r, s0, r, cloud.StatusAvailable), copyOf("m-c1-"+r, s1, r, cloud.StatusAvailable),
			copyOf("m-x-"+r, s2, r, cloud.StatusAvailable)} // no job: foreign
	}
	obs := Observed{Sources: []cloud.Image{s0, s1, s2}, Copies: copies, Jobs: jobs}
	// Both listed: a copy, a prune and a foreign image in each region
	// (s1's copy, the newest Available, stays).
	all := `
copy m-2>cn-shanghai golden-2-copy
copy m-2>cn-beijing golden-2-copy
foreign m-2>cn-beijing golden-2-copy [m-x-cn-beijing] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
foreign m-2>cn-shanghai golden-2-copy [m-x-cn-shanghai] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
prune m-0>cn-shanghai golden-0-copy [m-c0-cn-shanghai] (retention keeps the copies of the newest source)
prune m-0>cn-beijing golden-0-copy [m-c0-cn-beijing] (retention keeps the copies of the newest source)
`
	checkPlan(t, p, obs, all)
	// cn-beijing unlisted: nothing at all there, even with stale copies
	// in obs; cn-shanghai is planned as before.
	obs.Unlisted = map[string]bool{"cn-beijing": true}
	checkPlan(t, p, obs, `
copy m-2>cn-shanghai golden-2-copy
foreign m-2>cn-shanghai golden-2-copy [m-x-cn-shanghai] (partial lineage tags (replicatord:job-id, replicatord:source-image and replicatord:source-region must all be set))
prune m-0>cn-shanghai golden-0-copy [m-c0-cn-shanghai] (retention keeps the copies of the newest source)
`)
}
