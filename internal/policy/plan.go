package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// Action is what a policy would do for one source image in one region. The
// numbers equal replicator.v1.PlanAction.
type Action int

const (
	ActionUnspecified      Action = iota
	ActionCopy                    // a copy would be started
	ActionExists                  // the copy exists and a finished job made or adopted it
	ActionAdopt                   // unused since ownership checks: only a new state file adopts (scheduler.Adopt)
	ActionPrune                   // retention would delete the copy
	ActionBlocked                 // the copy cannot be made; Reason says why
	ActionInProgress              // a job is working on it
	ActionForeign                 // an image with replicatord tags this installation cannot prove it made; never touched
	ActionSkippedCancelled        // the pair was cancelled; not copied or adopted until the job is retried
)

var actionNames = map[Action]string{
	ActionUnspecified: "unspecified", ActionCopy: "copy", ActionExists: "exists", ActionAdopt: "adopt",
	ActionPrune: "prune", ActionBlocked: "blocked", ActionInProgress: "in-progress",
	ActionForeign: "foreign", ActionSkippedCancelled: "skipped-cancelled",
}

func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Observed is what a reconciler saw of one policy.
type Observed struct {
	// Sources are the candidate images in the source region (all pages);
	// Plan applies the selectors itself, so a superset is fine.
	Sources []cloud.Image
	// Copies maps a destination region to the images there carrying the
	// lineage tag replicatord:policy=<name>, in every status.
	Copies map[string][]cloud.Image
	// Jobs are the policy's jobs: every non-terminal one and the latest
	// terminal one per source × region.
	Jobs []*job.Job
	// Owner is this installation's name (daemon.owner).
	Owner string
	// Known holds, by id, the store's job for every replicatord:job-id tag
	// on Copies that the store knows: the proof that a copy is ours.
	Known map[string]*job.Job
	// Tombstones are the policy's cancelled pairs.
	Tombstones []job.Tombstone
	// Unlisted names the destinations whose copies could not be listed
	// this time (a transient error). Plan plans nothing there — no copy,
	// no prune, no Foreign — since a partial view of a region is never
	// acted on; the other destinations are planned as usual.
	Unlisted map[string]bool
}

// Item is one line of a plan.
type Item struct {
	Policy               string
	SourceImageID        string
	SourceImageName      string
	DestinationRegion    string
	Action               Action
	Reason               string
	SizeGiB              int64
	DestinationImageID   string // the copy's id, when it exists
	DestinationImageName string // the copy's name, or the name it would get
	// JobID is the job whose copy a Prune item deletes (the proof of
	// ownership the scheduler checks), or whose copy a Copy item found gone.
	JobID string
}

// Ownership of a listed copy, decided from the store, never from tags alone.
type ownership struct {
	ours   bool
	job    *job.Job // the store's job that made (or adopted) the copy
	reason string   // why it is foreign
}

// owned decides whether im, listed in region with this policy's tag, is a
// copy this installation made: its job id must be in the store, agree
// with the copy's other tags, and record this image as its copy (or be in
// flight on the same attempt, not yet recorded). The owner tag, when
// present, must be this installation's; copies made before the tag existed
// are recognised through their job alone.
func (p *Policy) owned(im cloud.Image, region string, obs Observed) ownership {
	t := im.Tags
	if o, ok := t[job.TagOwner]; ok && o != obs.Owner {
		return ownership{reason: fmt.Sprintf("owned by installation %s (%s), not %s", quote(o), job.TagOwner, quote(obs.Owner))}
	}
	jid := t[job.TagJobID]
	if jid == "" || t[job.TagSourceImage] == "" || t[job.TagSourceRegion] == "" {
		return ownership{reason: fmt.Sprintf("partial lineage tags (%s, %s and %s must all be set)", job.TagJobID, job.TagSourceImage, job.TagSourceRegion)}
	}
	j := obs.Known[jid]
	if j == nil {
		return ownership{reason: fmt.Sprintf("job %s is not in this installation's store", jid)}
	}
	if j.Policy != p.Name || j.SourceImageID != t[job.TagSourceImage] || j.SourceRegion != t[job.TagSourceRegion] || j.DestinationRegion != region {
		return ownership{reason: fmt.Sprintf("its tags do not match job %s (%s %s/%s to %s)", jid, j.Policy, j.SourceRegion, j.SourceImageID, j.DestinationRegion)}
	}
	if j.DestinationImageID == im.ID {
		if j.State.Terminal() && j.State != job.StateSucceeded {
			return ownership{reason: fmt.Sprintf("job %s is %s; its copy is left alone", jid, j.State)}
		}
		return ownership{ours: true, job: j}
	}
	if j.DestinationImageID == "" && !j.State.Terminal() && t[job.TagAttempt] == strconv.Itoa(int(j.Attempts)) {
		return ownership{ours: true, job: j} // accepted, not yet recorded
	}
	recorded := j.DestinationImageID
	if recorded == "" {
		recorded = "none"
	}
	return ownership{reason: fmt.Sprintf("job %s's copy is %s, not this image", jid, recorded)}
}

// Plan compares what is with what the policy wants and returns one item per
// selected source × destination, newest source first and destinations in
// policy order, followed by the Foreign items and the Prune items of
// retention. Only copies this installation can prove it made count (see
// owned); the others are Foreign and never touched. The rules, per
// source × destination:
//
//   - a non-terminal job exists: InProgress (never a second copy);
//   - the pair was cancelled (a tombstone): SkippedCancelled, until the
//     job is retried;
//   - a copy of ours exists (any status but CreateFailed): Exists (a
//     Deprecated one too: the user deprecated it);
//   - otherwise a copy is missing (never made, deleted, or CreateFailed):
//     Copy, unless it is Blocked — the source is not Available or is
//     larger than max_size_gib, the name renders badly, the tags do not
//     fit, or ECS refused the same request permanently last time (change
//     the policy or retry the job to try again). When the latest job had
//     SUCCEEDED, its copy is gone and the item names the job, to be marked
//     PRUNED.
//
// With retention keep_last N, only the N newest selected sources (of each
// family, with per_family) are copied, and copies beyond them are pruned
// (see prune).
func (p *Policy) Plan(obs Observed) []Item {
	sources := p.retained(p.Select(obs.Sources))
	ix := p.index(obs)
	var items []Item
	for _, src := range sources {
		for _, dst := range p.Destinations {
			if obs.Unlisted[dst.Region] {
				continue
			}
			items = append(items, p.planItem(src, dst, ix))
		}
	}
	items = append(items, ix.foreign...)
	return append(items, p.prune(sources, obs, ix)...)
}

// planIndex is what Plan knows of this policy's jobs and copies, by
// key(source, destination region).
type planIndex struct {
	active   map[string]*job.Job      // the oldest non-terminal job
	latest   map[string]*job.Job      // the latest terminal job
	tomb     map[string]job.Tombstone // the cancelled pairs
	owners   map[string]*job.Job      // by copy id: the store's job that made (or adopted) it
	copies   map[string][]cloud.Image // our copies carrying this policy's tags
	byRegion map[string][]cloud.Image // the same, by destination region
	foreign  []Item                   // the images with this policy's tags we cannot prove ours
}

func (p *Policy) index(obs Observed) planIndex {
	ix := planIndex{active: map[string]*job.Job{}, latest: map[string]*job.Job{}, tomb: map[string]job.Tombstone{},
		owners: map[string]*job.Job{}, copies: map[string][]cloud.Image{}, byRegion: map[string][]cloud.Image{}}
	for _, j := range obs.Jobs {
		if j == nil || (j.Policy != "" && j.Policy != p.Name) {
			continue
		}
		k := key(j.SourceImageID, j.DestinationRegion)
		if !j.State.Terminal() {
			if a := ix.active[k]; a == nil || j.CreateTime.Before(a.CreateTime) {
				ix.active[k] = j
			}
		} else if l := ix.latest[k]; l == nil || j.CreateTime.After(l.CreateTime) {
			ix.latest[k] = j
		}
	}
	for _, t := range obs.Tombstones {
		if t.Policy == p.Name {
			ix.tomb[key(t.SourceImageID, t.DestinationRegion)] = t
		}
	}
	for _, region := range sortedRegions(obs.Copies) {
		if obs.Unlisted[region] {
			continue
		}
		for _, im := range obs.Copies[region] {
			if im.Tags[job.TagPolicy] != p.Name {
				continue
			}
			src := im.Tags[job.TagSourceImage]
			o := p.owned(im, region, obs)
			if !o.ours {
				ix.foreign = append(ix.foreign, Item{Policy: p.Name, SourceImageID: src, DestinationRegion: region,
					Action: ActionForeign, Reason: o.reason, SizeGiB: im.SizeGiB,
					DestinationImageID: im.ID, DestinationImageName: im.Name})
				continue
			}
			ix.owners[im.ID] = o.job
			k := key(src, region)
			ix.copies[k] = append(ix.copies[k], im)
			ix.byRegion[region] = append(ix.byRegion[region], im)
		}
	}
	return ix
}

func sortedRegions(m map[string][]cloud.Image) []string {
	out := make([]string, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// planItem decides one source in one destination: in progress, skipped
// (cancelled), an existing copy of ours, or to copy (or blocked).
func (p *Policy) planItem(src cloud.Image, dst Destination, ix planIndex) Item {
	k := key(src.ID, dst.Region)
	it := Item{Policy: p.Name, SourceImageID: src.ID, SourceImageName: src.Name,
		DestinationRegion: dst.Region, SizeGiB: src.SizeGiB}
	if j := ix.active[k]; j != nil {
		it.Action = ActionInProgress
		it.Reason = fmt.Sprintf("job %s is %s", j.ID, j.State)
		it.DestinationImageID, it.DestinationImageName = j.DestinationImageID, j.DestinationImageName
		return it
	}
	if t, ok := ix.tomb[k]; ok {
		it.Action = ActionSkippedCancelled
		it.Reason = fmt.Sprintf("job %s was cancelled by %s at %s; retry it to copy again", t.JobID, t.By, t.Time.UTC().Format(time.RFC3339))
		return it
	}
	if c, ok := bestCopy(ix.copies[k]); ok {
		it.DestinationImageID, it.DestinationImageName = c.ID, c.Name
		it.Action = ActionExists
		if c.Status != cloud.StatusAvailable {
			it.Reason = "copy is " + c.Status
		}
		if j := ix.owners[c.ID]; j != nil && j.Adopted {
			it.Reason = strings.TrimPrefix(it.Reason+"; adopted by job "+j.ID, "; ")
		}
		return it
	}
	name, _, err := p.Render(src, dst)
	it.DestinationImageName = name
	if reason := p.blocked(src, err, ix.latest[k], name, dst); reason != "" {
		it.Action, it.Reason = ActionBlocked, reason
		return it
	}
	it.Action = ActionCopy
	if l := ix.latest[k]; l != nil && l.State == job.StateSucceeded {
		it.Reason = "the copy made by job " + l.ID + " is gone"
		it.JobID = l.ID
	} else if hasStatus(ix.copies[k], cloud.StatusCreateFailed) {
		it.Reason = "the last copy ended CreateFailed"
	}
	return it
}

func key(src, dst string) string { return src + "\x00" + dst }

// bestCopy picks the copy that stands for a source in a region, ignoring
// CreateFailed ones: Available first, then in flight, then the rest; the
// newest among equals.
func bestCopy(ims []cloud.Image) (cloud.Image, bool) {
	rank := func(s string) int {
		switch s {
		case cloud.StatusAvailable:
			return 0
		case cloud.StatusCreating:
			return 1
		case cloud.StatusWaiting:
			return 2
		}
		return 3
	}
	var best cloud.Image
	found := false
	for _, im := range ims {
		if im.Status == cloud.StatusCreateFailed {
			continue
		}
		if !found || rank(im.Status) < rank(best.Status) ||
			rank(im.Status) == rank(best.Status) && (im.CreationTime.After(best.CreationTime) ||
				im.CreationTime.Equal(best.CreationTime) && im.ID < best.ID) {
			best, found = im, true
		}
	}
	return best, found
}

func hasStatus(ims []cloud.Image, status string) bool {
	for _, im := range ims {
		if im.Status == status {
			return true
		}
	}
	return false
}

// blocked returns why a missing copy cannot be made now, or "".
func (p *Policy) blocked(src cloud.Image, renderErr error, last *job.Job, name string, dst Destination) string {
	switch {
	case src.Status != "" && src.Status != cloud.StatusAvailable:
		return fmt.Sprintf("source is %s, not Available", src.Status)
	case p.MaxSizeGiB > 0 && src.SizeGiB > p.MaxSizeGiB:
		return fmt.Sprintf("source is %d GiB, above max_size_gib %d (ECS wants a ticket / SizeExceed.Image)", src.SizeGiB, p.MaxSizeGiB)
	case renderErr != nil:
		return renderErr.Error()
	}
	if err := checkCopyTags(p.CopyTags(src)); err != nil {
		return err.Error()
	}
	if last == nil || !sameRequest(last, name, dst) {
		return ""
	}
	switch {
	case last.State == job.StateCancelled && last.CancelLifted == "":
		return fmt.Sprintf("job %s was cancelled; retry it to copy again", last.ID)
	case last.State == job.StateFailed && last.Error != nil && !last.Error.Retryable && last.CloudStatus != cloud.StatusCreateFailed:
		return fmt.Sprintf("job %s failed: %s: %s; change the policy or retry the job", last.ID, last.Error.Code, last.Error.Message)
	}
	return ""
}

// sameRequest reports whether j asked ECS for the copy the policy would ask
// for now, so that a permanent refusal is not repeated every interval.
func sameRequest(j *job.Job, name string, dst Destination) bool {
	return j.DestinationImageName == name && j.Encrypted == dst.Encrypted && j.KMSKeyID == dst.KMSKeyID
}

// retained returns the selected sources retention keeps: the KeepLast
// newest (of each family with PerFamily), in their order.
func (p *Policy) retained(sources []cloud.Image) []cloud.Image {
	k := p.Retention.KeepLast
	if k <= 0 {
		return sources
	}
	var out []cloud.Image
	count := map[string]int{}
	for _, s := range sources {
		f := p.familyKey(s.Family)
		if count[f] < k {
			count[f]++
			out = append(out, s)
		}
	}
	return out
}

// familyKey is the retention group of an image family: the family with
// PerFamily, one group for everything otherwise.
func (p *Policy) familyKey(family string) string {
	if p.Retention.PerFamily {
		return family
	}
	return ""
}

// prune returns the Prune items of retention keep_last N, per destination
// (and per family, with per_family). Copies this policy made are grouped by
// source image and the groups ranked newest source first (by the source's
// creation time; a source no longer listed ranks below every listed one, by
// its copy's creation time). The kept groups are the sources the plan
// copies, then the next-newest groups up to N. Copies of the other groups
// are pruned when Available and no job is working on them, and never the
// newest Available copy of the region (family). A copy whose source is no
// longer listed is put in the family the copy itself carries. Only our
// copies count, each pruned with the SUCCEEDED job that made it (the proof
// the scheduler checks); an adopted one only with prune_adopted, else it
// is shown as kept.
func (p *Policy) prune(kept []cloud.Image, obs Observed, ix planIndex) []Item {
	n := p.Retention.KeepLast
	if n <= 0 {
		return nil
	}
	srcs := map[string]srcInfo{}
	for _, s := range obs.Sources {
		srcs[s.ID] = srcInfo{s.CreationTime, s.Name, s.Family}
	}
	keep := map[string]bool{}
	keptPerFamily := map[string]int{}
	for _, s := range kept {
		keep[s.ID] = true
		keptPerFamily[p.familyKey(s.Family)]++
	}
	busy := map[string]bool{}
	for _, j := range ix.active {
		busy[j.DestinationImageID] = true
	}
	var items []Item
	for _, dst := range p.Destinations {
		if obs.Unlisted[dst.Region] {
			continue
		}
		byFamily := p.copyGroups(ix.byRegion[dst.Region], srcs)
		families := make([]string, 0, len(byFamily))
		for f := range byFamily {
			families = append(families, f)
		}
		sort.Strings(families)
		for _, f := range families {
			ranked := byFamily[f]
			// The newest Available copy is never pruned.
			newestAvailable := ""
			for _, g := range ranked {
				if c, ok := bestCopy(g.copies); ok && c.Status == cloud.StatusAvailable {
					newestAvailable = c.ID
					break
				}
			}
			slots := n - keptPerFamily[f]
			for _, g := range ranked {
				if keep[g.src] {
					continue
				}
				if slots > 0 {
					slots--
					continue
				}
				sortImagesByID(g.copies)
				for _, c := range g.copies {
					if it, ok := p.pruneItem(c, g, dst, srcs, ix, newestAvailable, busy); ok {
						items = append(items, it)
					}
				}
			}
		}
	}
	return items
}

// pruneItem is the retention item of copy c of group g, if any.
func (p *Policy) pruneItem(c cloud.Image, g *copyGroup, dst Destination, srcs map[string]srcInfo, ix planIndex, newestAvailable string, busy map[string]bool) (Item, bool) {
	j := ix.owners[c.ID]
	if c.Status != cloud.StatusAvailable || c.ID == newestAvailable || busy[c.ID] ||
		j == nil || j.State != job.StateSucceeded || j.DestinationImageID != c.ID {
		return Item{}, false
	}
	it := Item{
		Policy: p.Name, SourceImageID: g.src, SourceImageName: srcs[g.src].name, DestinationRegion: dst.Region,
		Action: ActionPrune, SizeGiB: c.SizeGiB, DestinationImageID: c.ID, DestinationImageName: c.Name,
		Reason: p.retentionReason(), JobID: j.ID,
	}
	if j.Adopted && !p.Retention.PruneAdopted {
		// Not proven ours: kept, and said so.
		it.Action = ActionExists
		it.Reason = fmt.Sprintf("adopted by job %s; retention would prune it but retention.prune_adopted is false", j.ID)
		it.JobID = ""
	}
	return it, true
}

// srcInfo is what prune needs of a listed source.
type srcInfo struct {
	t            time.Time
	name, family string
}

// copyGroup is the copies of one source in one region.
type copyGroup struct {
	src, family string
	known       bool // the source is listed
	t           time.Time
	copies      []cloud.Image
}

// copyGroups groups a region's copies made by this policy by source, then
// by family key, each family ranked newest source first.
func (p *Policy) copyGroups(ims []cloud.Image, srcs map[string]srcInfo) map[string][]*copyGroup {
	groups := map[string]*copyGroup{}
	for _, im := range ims {
		if im.Tags[job.TagPolicy] != p.Name || im.Tags[job.TagSourceImage] == "" {
			continue
		}
		src := im.Tags[job.TagSourceImage]
		g := groups[src]
		if g == nil {
			info, known := srcs[src]
			g = &copyGroup{src: src, known: known, t: info.t, family: info.family}
			if !known {
				g.family = im.Family
			}
			groups[src] = g
		}
		if !g.known && im.CreationTime.After(g.t) {
			g.t = im.CreationTime
		}
		g.copies = append(g.copies, im)
	}
	byFamily := map[string][]*copyGroup{}
	for _, g := range groups {
		f := p.familyKey(g.family)
		byFamily[f] = append(byFamily[f], g)
	}
	for _, ranked := range byFamily {
		sort.Slice(ranked, func(i, j int) bool {
			a, b := ranked[i], ranked[j]
			if a.known != b.known {
				return a.known
			}
			if !a.t.Equal(b.t) {
				return a.t.After(b.t)
			}
			return a.src < b.src
		})
	}
	return byFamily
}

func (p *Policy) retentionReason() string {
	kept := fmt.Sprintf("the %d newest sources", p.Retention.KeepLast)
	if p.Retention.KeepLast == 1 {
		kept = "the newest source"
	}
	if p.Retention.PerFamily {
		return "retention keeps the copies of " + kept + " of each family"
	}
	return "retention keeps the copies of " + kept
}

func sortImagesByID(ims []cloud.Image) {
	sort.Slice(ims, func(i, j int) bool { return ims[i].ID < ims[j].ID })
}
