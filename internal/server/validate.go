package server

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/input"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/state"
)

// Limits on requests, checked before anything is touched.
const (
	maxDestinations = 64
	maxJobIDs       = 1000
	maxPageSize     = 1000
	// ECS allows 20 tags on a copy; replicatord's lineage uses 5.
	maxUserTags = 15
)

var (
	imageIDRe  = regexp.MustCompile(`^m-[A-Za-z0-9]{4,64}$`)
	regionIDRe = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+){1,4}$`)
	// ECS image name rules: 2-128 chars, starts with a letter, letters,
	// digits, '.', ':', '_', '-'.
	imageNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.:_-]{1,127}$`)
)

func (s *Server) checkRegion(field, r string) error {
	if r == "" {
		return errdefs.Invalid(field, "is required")
	}
	if !regionIDRe.MatchString(r) {
		return errdefs.Invalid(field, "%q is not a region id (like cn-hangzhou)", clip(r))
	}
	if s.opts.CloudReady != nil {
		if err := s.opts.CloudReady(); err != nil {
			return fmt.Errorf("%s: cannot check region %s yet: %w", field, r, err)
		}
	}
	if s.opts.Regions != nil {
		if known := s.opts.Regions(); known != nil && !known[r] {
			return errdefs.Invalid(field, "unknown region %q", clip(r))
		}
	}
	return nil
}

func checkImageName(field, name string) error {
	switch {
	case !imageNameRe.MatchString(name):
		return errdefs.Invalid(field, "%q is not a valid ECS image name: 2-128 characters, starting with a letter; letters, digits, '.', ':', '_', '-'", clip(name))
	case input.HasPrefixFold(name, "acs:") || input.HasPrefixFold(name, "aliyun"):
		return errdefs.Invalid(field, "%q must not start with acs: or aliyun (in any case)", clip(name))
	}
	return nil
}

func checkDescription(field, d string) error {
	n := utf8.RuneCountInString(d)
	switch {
	case !utf8.ValidString(d):
		return errdefs.Invalid(field, "is not valid UTF-8")
	case n < 2 || n > 256:
		return errdefs.Invalid(field, "must be 2-256 characters, got %d", n)
	case strings.HasPrefix(d, "http://") || strings.HasPrefix(d, "https://"):
		return errdefs.Invalid(field, "must not start with http:// or https://")
	}
	if err := input.CheckControl(d); err != nil {
		return errdefs.Invalid(field, "%v", err)
	}
	return nil
}

func checkTags(field string, tags map[string]string) error {
	if len(tags) > maxUserTags {
		return errdefs.Invalid(field, "at most %d tags (ECS allows 20 and replicatord uses 5 for lineage), got %d", maxUserTags, len(tags))
	}
	// Sorted, so that the same bad request always names the same tag.
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := tags[k]
		switch {
		case k == "":
			return errdefs.Invalid(field, "tag key must not be empty")
		case utf8.RuneCountInString(k) > 128 || !utf8.ValidString(k):
			return errdefs.Invalid(field, "tag key %q is longer than 128 characters or not UTF-8", clip(k))
		case input.CheckControl(k) != nil:
			return errdefs.Invalid(field, "tag key %q %v", clip(k), input.CheckControl(k))
		case input.HasPrefixFold(k, "aliyun") || input.HasPrefixFold(k, "acs:"):
			return errdefs.Invalid(field, "tag key %q must not start with aliyun or acs: (in any case)", clip(k))
		case input.HasPrefixFold(k, "replicatord:"):
			return errdefs.Invalid(field, "tag key %q is reserved for replicatord's lineage tags (the prefix replicatord: in any case)", clip(k))
		case utf8.RuneCountInString(v) > 128 || !utf8.ValidString(v):
			return errdefs.Invalid(field, "value of tag %q is longer than 128 characters or not UTF-8", clip(k))
		case input.CheckControl(v) != nil:
			return errdefs.Invalid(field, "value of tag %q %v", clip(k), input.CheckControl(v))
		}
	}
	return nil
}

func checkJobIDs(field string, ids []string) error {
	if len(ids) == 0 {
		return errdefs.Invalid(field, "at least one job id is required")
	}
	if len(ids) > maxJobIDs {
		return errdefs.Invalid(field, "at most %d job ids, got %d", maxJobIDs, len(ids))
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !job.ValidID(id) {
			return errdefs.Invalid(field, "%q is not a job id (j- and 26 characters)", clip(id))
		}
		if seen[id] {
			return errdefs.Invalid(field, "job id %s is given twice", id)
		}
		seen[id] = true
	}
	return nil
}

// MaxCopyPriority bounds CopyRequest.priority either way.
const MaxCopyPriority = 1000

func (s *Server) validateCopy(r *pb.CopyRequest) error {
	if p := r.GetPriority(); p < -MaxCopyPriority || p > MaxCopyPriority {
		return errdefs.Invalid("priority", "%d is out of range: want -%d to %d", p, MaxCopyPriority, MaxCopyPriority)
	}
	if id := r.GetRequestId(); id != "" {
		if err := state.ValidRequestID(id); err != nil {
			return errdefs.Invalid("request_id", "%q %v", clip(id), err)
		}
	}
	if err := s.checkRegion("source_region", r.GetSourceRegion()); err != nil {
		return err
	}
	if r.GetSourceImageId() == "" {
		return errdefs.Invalid("source_image_id", "is required")
	}
	if !imageIDRe.MatchString(r.GetSourceImageId()) {
		return errdefs.Invalid("source_image_id", "%q is not a custom image id (m-...)", clip(r.GetSourceImageId()))
	}
	dests := r.GetDestinationRegions()
	if len(dests) == 0 {
		return errdefs.Invalid("destination_regions", "at least one destination region is required")
	}
	if len(dests) > maxDestinations {
		return errdefs.Invalid("destination_regions", "at most %d destination regions, got %d", maxDestinations, len(dests))
	}
	seen := map[string]bool{}
	for _, d := range dests {
		if err := s.checkRegion("destination_regions", d); err != nil {
			return err
		}
		if d == r.GetSourceRegion() {
			return errdefs.Invalid("destination_regions", "%s is the source region; ECS copies only to other regions", d)
		}
		if seen[d] {
			return errdefs.Invalid("destination_regions", "%s is given twice", d)
		}
		seen[d] = true
	}
	if n := r.GetDestinationImageName(); n != "" {
		if err := checkImageName("destination_image_name", n); err != nil {
			return err
		}
	}
	if d := r.GetDestinationDescription(); d != "" {
		if err := checkDescription("destination_description", d); err != nil {
			return err
		}
	}
	if r.GetKmsKeyId() != "" && !r.GetEncrypted() {
		return errdefs.Invalid("kms_key_id", "requires encrypted")
	}
	if len(r.GetKmsKeyId()) > 128 {
		return errdefs.Invalid("kms_key_id", "is longer than 128 characters")
	}
	if err := input.CheckControl(r.GetKmsKeyId()); err != nil {
		return errdefs.Invalid("kms_key_id", "%v", err)
	}
	return checkTags("tags", r.GetTags())
}

// clip keeps echoed input short in error messages (input.Clip: about
// 200 bytes, valid UTF-8).
func clip(s string) string { return input.Clip(s) }
