package policy

import (
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

// NewJob returns the QUEUED job that copies src to dst as the policy says:
// rendered name and description, CopyTags, priority, encryption, and the
// post-copy settings (image family resolved, accounts to share with).
func (p *Policy) NewJob(src cloud.Image, dst Destination, now time.Time) (*job.Job, error) {
	name, desc, err := p.Render(src, dst)
	if err != nil {
		return nil, err
	}
	j := p.baseJob(src, dst, now)
	j.DestinationImageName, j.DestinationDescription = name, desc
	return j, nil
}

func (p *Policy) baseJob(src cloud.Image, dst Destination, now time.Time) *job.Job {
	region := src.Region
	if region == "" {
		region = p.Source.Region
	}
	return &job.Job{
		ID: job.NewID(now), Policy: p.Name, Priority: p.Priority,
		SourceRegion: region, SourceImageID: src.ID, SourceImageName: src.Name, SizeGiB: src.SizeGiB,
		DestinationRegion: dst.Region, Encrypted: dst.Encrypted, KMSKeyID: dst.KMSKeyID, Tags: p.CopyTags(src),
		ImageFamily: p.Family(src), ShareAccounts: append([]string(nil), p.Copy.ShareWithAccounts...),
		State: job.StateQueued, CreateTime: now, UpdateTime: now,
	}
}

// AdoptJob returns the job that adopts copy, an existing copy of src in
// dst carrying this policy's lineage: it starts WAITING or COPYING with the
// copy's id and name, so the scheduler polls it instead of sending
// CopyImage, and runs the post-copy actions once it is Available.
func (p *Policy) AdoptJob(src cloud.Image, dst Destination, copy cloud.Image, now time.Time) *job.Job {
	j := p.baseJob(src, dst, now)
	j.DestinationImageID = copy.ID
	j.DestinationImageName = copy.Name
	j.DestinationDescription = copy.Description
	j.CloudStatus = copy.Status
	j.ProgressPercent = copy.ProgressPercent
	j.State = job.StateCopying
	if copy.Status == cloud.StatusWaiting {
		j.State = job.StateWaiting
	}
	j.SubmitTime = now
	return j
}
