package aliyun

import (
	"regexp"
	"sort"
	"unicode"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// ECS limits per call (reference §2, §4, §8).
const (
	maxTagsPerCall      = 20  // Tag.N on CopyImage, DescribeImages, TagResources
	maxResourcesPerTag  = 50  // ResourceId.N on TagResources
	maxAccountsPerShare = 10  // AddAccount.N on ModifyImageSharePermission
	pageSize            = 100 // DescribeImages maximum
	maxClientToken      = 64
	maxTagKey           = 128
	maxTagValue         = 128
)

var (
	// A region id becomes part of a host name (ecs.<region>.aliyuncs.com)
	// when no Endpoint is set: letters, digits, '-' and '_' only, as the SDK
	// itself requires of a client's region.
	regionPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// Image ids are m-... for custom images; system image ids carry '.' and
	// '_'. No ',' (ids travel as a comma list) and nothing odd.
	idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	// Account ids are numeric; allow the same set as ids for the emulator's
	// sake but never ',' or spaces.
	accountPattern = idPattern
)

func checkRegion(field, region string) error {
	if region == "" {
		return errdefs.Invalid(field, "region is empty")
	}
	if !regionPattern.MatchString(region) {
		return errdefs.Invalid(field, "%q is not a region id", region)
	}
	return nil
}

func checkImageID(field, id string) error {
	if id == "" {
		return errdefs.Invalid(field, "image id is empty")
	}
	if !idPattern.MatchString(id) {
		return errdefs.Invalid(field, "%q is not an image id", id)
	}
	return nil
}

func checkTags(field string, tags map[string]string) error {
	for k, v := range tags {
		if k == "" {
			return errdefs.Invalid(field, "tag key is empty")
		}
		if len(k) > maxTagKey {
			return errdefs.Invalid(field, "tag key %.20q... is longer than %d characters", k, maxTagKey)
		}
		if len(v) > maxTagValue {
			return errdefs.Invalid(field, "value of tag %q is longer than %d characters", k, maxTagValue)
		}
	}
	return nil
}

func checkClientToken(token string) error {
	if len(token) > maxClientToken {
		return errdefs.Invalid("ClientToken", "longer than %d characters", maxClientToken)
	}
	for _, r := range token {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return errdefs.Invalid("ClientToken", "must be printable ASCII")
		}
	}
	return nil
}

// sortedKeys gives the tags in a fixed order, so that requests (and the
// chunks of a split request) are reproducible.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// chunks splits s into pieces of at most n.
func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > n {
		out = append(out, s[:n:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
