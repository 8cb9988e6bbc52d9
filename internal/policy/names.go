package policy

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/replicatord/replicatord/internal/input"
)

var (
	policyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+)+$`)
	imageIDRE    = regexp.MustCompile(`^m-[a-z0-9]{4,40}$`)
	kmsKeyRE     = regexp.MustCompile(`^[A-Za-z0-9:/_.-]{1,256}$`)
	accountRE    = regexp.MustCompile(`^[0-9]{1,20}$`)
	imageNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.:_-]*$`)
	familyRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9:_-]*$`)
)

// CheckImageName returns the ECS image name rule (DestinationImageName)
// that name breaks, phrased to follow "it", or nil.
func CheckImageName(name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case n < 2 || n > 128:
		return fmt.Errorf("must be 2 to 128 characters long (it has %d)", n)
	case hasReservedPrefix(name):
		return fmt.Errorf("must not start with \"acs:\" or \"aliyun\"")
	case strings.Contains(name, "http://") || strings.Contains(name, "https://"):
		return fmt.Errorf("must not contain http:// or https://")
	case !imageNameRE.MatchString(name):
		return fmt.Errorf("must start with a letter and hold only letters, digits, \".\", \":\", \"_\" and \"-\"")
	}
	return nil
}

// CheckDescription returns the ECS rule a copy description breaks, phrased
// to follow "it", or nil. An empty description is not sent and is fine.
func CheckDescription(s string) error {
	if s == "" {
		return nil
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n < 2 || n > 256:
		return fmt.Errorf("must be 2 to 256 characters long (it has %d)", n)
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return fmt.Errorf("must not start with http:// or https://")
	}
	return input.CheckControl(s)
}

// CheckFamily returns why an image family name breaks the ECS rules, or nil.
func CheckFamily(s string) error {
	n := utf8.RuneCountInString(s)
	switch {
	case n < 2 || n > 128:
		return fmt.Errorf("image family %s must be 2 to 128 characters long", quote(s))
	case hasReservedPrefix(s):
		return fmt.Errorf("image family %s must not start with \"acs:\" or \"aliyun\"", quote(s))
	case !familyRE.MatchString(s):
		return fmt.Errorf("image family %s must start with a letter and hold only letters, digits, \":\", \"_\" and \"-\"", quote(s))
	}
	return nil
}

// checkTag returns why a tag breaks the ECS rules, or nil. Keys starting
// with "replicatord:", in any case, are the lineage tags and belong to
// replicatord; control characters are refused in keys and values.
func checkTag(k, v string) error {
	switch {
	case k == "":
		return fmt.Errorf("tag keys must not be empty")
	case utf8.RuneCountInString(k) > 128:
		return fmt.Errorf("tag key %s is longer than 128 characters", quote(k))
	case hasReservedPrefix(k):
		return fmt.Errorf("tag key %s must not start with \"acs:\" or \"aliyun\"", quote(k))
	case strings.HasPrefix(k, "http://") || strings.HasPrefix(k, "https://"):
		return fmt.Errorf("tag key %s must not start with http:// or https://", quote(k))
	case input.HasPrefixFold(k, lineagePrefix):
		return fmt.Errorf("tag key %s is reserved: replicatord sets the %s* lineage tags itself", quote(k), lineagePrefix)
	case input.CheckControl(k) != nil:
		return fmt.Errorf("tag key %s %v", quote(k), input.CheckControl(k))
	case utf8.RuneCountInString(v) > 128:
		return fmt.Errorf("the value of tag %s is longer than 128 characters", quote(k))
	case input.CheckControl(v) != nil:
		return fmt.Errorf("the value of tag %s %v", quote(k), input.CheckControl(v))
	}
	return nil
}

const lineagePrefix = "replicatord:"

func hasReservedPrefix(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "acs:") || strings.HasPrefix(l, "aliyun")
}
