package ecsemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stateVersion is the layout of the state file; a file of another version
// is refused rather than half read.
const stateVersion = 1

// maxStateBytes bounds what is read at start: a state file is a few KiB per
// hundred images.
const maxStateBytes = 256 << 20

// The state file holds what a restart must keep: every image (copies with
// their task), the ids ever issued, the CopyImage ClientTokens, the STS
// sessions and each region's copy queue. It does not hold the counters,
// the nonces (a replay window of 15 minutes), the throttling buckets or
// the random generators, which start again from the seed.
type stateFile struct {
	Version  int                   `json:"version"`
	Saved    time.Time             `json:"saved"`
	Images   []imageState          `json:"images"`
	UsedIDs  []string              `json:"usedIds"`
	Tokens   map[string]tokenState `json:"clientTokens"`
	Sessions []session             `json:"stsSessions"`
	Queues   map[string]queueState `json:"queues"`
	// CopiesOf is Emulator.copiesOf: copies made of each source into each
	// region, from which the next one's fate is drawn.
	CopiesOf map[string]int `json:"copiesOf,omitempty"`
}

type imageState struct {
	ID              string               `json:"id"`
	Region          string               `json:"region"`
	Name            string               `json:"name"`
	Description     string               `json:"description,omitempty"`
	Family          string               `json:"family,omitempty"`
	ResourceGroupID string               `json:"resourceGroupId,omitempty"`
	SizeGiB         int64                `json:"sizeGiB"`
	CreationTime    time.Time            `json:"creationTime"`
	Tags            map[string]string    `json:"tags,omitempty"`
	Disks           []disk               `json:"disks"`
	Encrypted       bool                 `json:"encrypted,omitempty"`
	KMSKeyID        string               `json:"kmsKeyId,omitempty"`
	OS              osInfo               `json:"os"`
	Status          string               `json:"status,omitempty"` // fixed status; "" for a copy
	Copy            *taskState           `json:"copy,omitempty"`
	Shared          map[string]time.Time `json:"shared,omitempty"`
	Meta            imageMeta            `json:"meta"`
}

type taskState struct {
	ImageID      string        `json:"imageId,omitempty"` // "" once cancelled
	SourceRegion string        `json:"sourceRegion"`
	SourceID     string        `json:"sourceId"`
	Arrival      time.Time     `json:"arrival"`
	Startup      time.Duration `json:"startup"`
	Duration     time.Duration `json:"duration"`
	FailAt       float64       `json:"failAt,omitempty"`
	Cancelled    bool          `json:"cancelled,omitempty"`
	CancelAt     time.Time     `json:"cancelAt,omitempty"`
	Skipped      bool          `json:"skipped,omitempty"`
	Start        time.Time     `json:"start"`
	End          time.Time     `json:"end"`
}

type tokenState struct {
	Fingerprint string `json:"fingerprint"`
	ImageID     string `json:"imageId"`
}

type queueState struct {
	Base  []time.Time  `json:"base"`
	Tasks []*taskState `json:"tasks"`
}

// taskToState records a task; live says whether its image still exists
// (a deleted or cancelled copy's task stays queued until it is pruned).
func taskToState(t *copyTask, live bool) *taskState {
	ts := &taskState{SourceRegion: t.sourceRegion, SourceID: t.sourceID, Arrival: t.arrival, Startup: t.startup,
		Duration: t.duration, FailAt: t.failAt, Cancelled: t.cancelled, CancelAt: t.cancelAt, Skipped: t.skipped, Start: t.start, End: t.end}
	if t.img != nil && live {
		ts.ImageID = t.img.ID
	}
	return ts
}

func (ts *taskState) task() *copyTask {
	return &copyTask{sourceRegion: ts.SourceRegion, sourceID: ts.SourceID, arrival: ts.Arrival, startup: ts.Startup,
		duration: ts.Duration, failAt: ts.FailAt, cancelled: ts.Cancelled, cancelAt: ts.CancelAt, skipped: ts.Skipped, start: ts.Start, end: ts.End}
}

// snapshot captures the state. mu is held.
func (e *Emulator) snapshot(now time.Time) stateFile {
	sf := stateFile{Version: stateVersion, Saved: now.UTC(), Tokens: map[string]tokenState{}, Queues: map[string]queueState{}, CopiesOf: maps.Clone(e.copiesOf)}
	for _, id := range sortedKeys(e.images) {
		im := e.images[id]
		is := imageState{ID: im.ID, Region: im.Region, Name: im.Name, Description: im.Description, Family: im.Family,
			ResourceGroupID: im.ResourceGroupID, SizeGiB: im.SizeGiB, CreationTime: im.CreationTime, Tags: im.Tags,
			Disks: im.Disks, Encrypted: im.Encrypted, KMSKeyID: im.KMSKeyID, OS: im.os, Status: im.fixedStatus,
			Shared: im.shared, Meta: im.meta}
		if im.copy != nil {
			is.Copy = taskToState(im.copy, true)
		}
		sf.Images = append(sf.Images, is)
	}
	sf.UsedIDs = sortedKeys(e.usedIDs)
	for k, v := range e.tokens {
		sf.Tokens[k] = tokenState{Fingerprint: v.fingerprint, ImageID: v.imageID}
	}
	for _, id := range sortedKeys(e.sessions) {
		sf.Sessions = append(sf.Sessions, e.sessions[id])
	}
	for region, q := range e.queues {
		qs := queueState{Base: q.base}
		for _, t := range q.tasks {
			qs.Tasks = append(qs.Tasks, taskToState(t, t.img != nil && e.images[t.img.ID] == t.img))
		}
		sf.Queues[region] = qs
	}
	return sf
}

// restore replaces the state with sf after checking it. mu is held (or e
// is not shared yet). Errors name the bad entry and change nothing.
// check refuses an image entry of a state file that the emulator could not
// have written: images and names hold the entries restored before it.
func (is imageState) check(images map[string]*image, names map[string]bool) error {
	switch {
	case findRegion(is.Region) == nil:
		return fmt.Errorf("unknown region %q", is.Region)
	case !imageIDRe.MatchString(is.ID):
		return fmt.Errorf("not an image id")
	case images[is.ID] != nil:
		return fmt.Errorf("duplicate id")
	case is.Copy == nil && !fixtureStat[is.Status]:
		return fmt.Errorf("status %q is not an image status", is.Status)
	case is.Copy != nil && is.Status != "":
		return fmt.Errorf("a copy has no fixed status")
	case is.Copy != nil && (is.Copy.Duration <= 0 || is.Copy.End.Before(is.Copy.Start)):
		return fmt.Errorf("copy task times are inconsistent")
	case names[is.Region+"/"+is.Name]:
		return fmt.Errorf("name %q is used twice in %s", is.Name, is.Region)
	case is.SizeGiB <= 0:
		return fmt.Errorf("size %d", is.SizeGiB)
	}
	return is.Meta.validate()
}

func (e *Emulator) restore(sf stateFile) error {
	if sf.Version != stateVersion {
		return fmt.Errorf("version %d is not %d", sf.Version, stateVersion)
	}
	images := map[string]*image{}
	byRegion := map[string]map[string]*image{}
	used := map[string]bool{}
	for _, id := range sf.UsedIDs {
		used[id] = true
	}
	names := map[string]bool{}
	for i, is := range sf.Images {
		if err := is.check(images, names); err != nil {
			return fmt.Errorf("image %d (%s): %v", i+1, is.ID, err)
		}
		names[is.Region+"/"+is.Name] = true
		im := &image{ID: is.ID, Region: is.Region, Name: is.Name, Description: is.Description, Family: is.Family,
			ResourceGroupID: is.ResourceGroupID, SizeGiB: is.SizeGiB, CreationTime: is.CreationTime.UTC(), Tags: is.Tags,
			Disks: is.Disks, Encrypted: is.Encrypted, KMSKeyID: is.KMSKeyID, os: is.OS, fixedStatus: is.Status,
			shared: is.Shared, meta: is.Meta}
		if im.Tags == nil {
			im.Tags = map[string]string{}
		}
		if is.Copy != nil {
			im.copy = is.Copy.task()
			im.copy.img = im
		}
		images[im.ID] = im
		if byRegion[im.Region] == nil {
			byRegion[im.Region] = map[string]*image{}
		}
		byRegion[im.Region][im.ID] = im
		used[im.ID] = true
		for _, d := range im.Disks {
			used[d.SnapshotID] = true
		}
	}
	tokens := map[string]tokenEntry{}
	for k, v := range sf.Tokens {
		if images[v.ImageID] == nil {
			continue // the copy is gone; so is the token, as at run time
		}
		tokens[k] = tokenEntry{fingerprint: v.Fingerprint, imageID: v.ImageID}
	}
	sessions := map[string]session{}
	for i, s := range sf.Sessions {
		if s.AccessKeyID == "" || s.Secret == "" || s.Token == "" || !roleARNRe.MatchString(s.RoleARN) {
			return fmt.Errorf("STS session %d: incomplete", i+1)
		}
		sessions[s.AccessKeyID] = s
	}
	queues := map[string]*regionQueue{}
	for region, qs := range sf.Queues {
		if findRegion(region) == nil {
			return fmt.Errorf("queue of unknown region %q", region)
		}
		if len(qs.Base) != e.slots {
			return fmt.Errorf("queue of %s has %d slots, the emulator %d (CopySlotsPerRegion changed?)", region, len(qs.Base), e.slots)
		}
		q, err := e.restoreQueue(region, qs, images)
		if err != nil {
			return err
		}
		queues[region] = q
	}
	copiesOf := map[string]int{}
	for k, n := range sf.CopiesOf {
		if n < 0 || !strings.Contains(k, ">") {
			return fmt.Errorf("copiesOf %q: %d copies (want source>region and a count of 0 or more)", k, n)
		}
		copiesOf[k] = n
	}
	e.images, e.byRegion, e.usedIDs, e.tokens, e.sessions, e.queues = images, byRegion, used, tokens, sessions, queues
	e.copiesOf = copiesOf
	e.nonces = map[string]time.Time{}
	for _, q := range e.queues {
		// Rebuilds tail from base and the tasks; the times come out the same.
		q.reschedule(e.clk.Now())
	}
	return nil
}

// restoreQueue rebuilds the copy queue of region from its state; the tasks
// of copies are those of the images restored already.
func (e *Emulator) restoreQueue(region string, qs queueState, images map[string]*image) (*regionQueue, error) {
	q := newRegionQueue(e.slots)
	copy(q.base, qs.Base)
	for j, ts := range qs.Tasks {
		if ts == nil {
			return nil, fmt.Errorf("queue of %s, task %d: empty", region, j+1)
		}
		var t *copyTask
		if ts.ImageID != "" {
			im := images[ts.ImageID]
			if im == nil || im.copy == nil || im.Region != region {
				return nil, fmt.Errorf("queue of %s, task %d: image %s is not a copy into %s", region, j+1, ts.ImageID, region)
			}
			t = im.copy
		} else {
			t = ts.task()
		}
		q.tasks = append(q.tasks, t)
	}
	return q, nil
}

// LoadState reads a state file as written by the emulator.
func loadState(path string) (stateFile, error) {
	var sf stateFile
	f, err := os.Open(path)
	if err != nil {
		return sf, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return sf, err
	}
	if st.Size() > maxStateBytes {
		return sf, fmt.Errorf("%d bytes, more than %d", st.Size(), maxStateBytes)
	}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return sf, fmt.Errorf("not a state file: %v", err)
	}
	if dec.More() {
		return sf, errors.New("not a state file: data after the JSON object")
	}
	return sf, nil
}

// openState loads the state file if there is one, else writes the initial
// state to it, so that a path that cannot be written fails at start.
func (e *Emulator) openState(path string) error {
	sf, err := loadState(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return e.persistLocked()
	case err != nil:
		return fmt.Errorf("ecsemu state file %s: %w", path, err)
	}
	if err := e.restore(sf); err != nil {
		return fmt.Errorf("ecsemu state file %s: %w", path, err)
	}
	return nil
}

// persistLocked writes the state atomically: a temporary file in the same
// directory, synced, renamed over the old one, and the directory synced.
// mu is held. A crash leaves the old file or the new one, never a mix.
func (e *Emulator) persistLocked() error {
	if e.stateFile == "" {
		return nil
	}
	data, err := json.MarshalIndent(e.snapshot(e.clk.Now()), "", " ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(e.stateFile)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(e.stateFile)+".tmp-*")
	if err != nil {
		return fmt.Errorf("ecsemu state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ecsemu state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ecsemu state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ecsemu state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), e.stateFile); err != nil {
		return fmt.Errorf("ecsemu state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readOnly are the actions that change nothing and need no write.
var readOnly = map[string]bool{
	"DescribeImages": true, "DescribeRegions": true, "ListTagResources": true,
	"DescribeImageSharePermission": true, "GetCallerIdentity": true,
}
