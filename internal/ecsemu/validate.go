package ecsemu

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxTagsPerResource = 20
	maxTagLen          = 128
)

// checkImageName applies the CopyImage rules for DestinationImageName:
// 2–128 characters, a letter first, not acs: or aliyun first, no http(s)://,
// then letters, digits, '.', ':', '_' and '-'.
func checkImageName(name string) *apiError {
	bad := func(why string) *apiError {
		return newErr(http.StatusBadRequest, "InvalidImageName.Malformed", "The specified image name is wrongly formed: %s.", why)
	}
	if !utf8.ValidString(name) {
		return bad("it is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n < 2 || n > 128 {
		return bad("it must be 2 to 128 characters long")
	}
	first, _ := utf8.DecodeRuneInString(name)
	if !unicode.IsLetter(first) {
		return bad("it must start with a letter")
	}
	if lower := strings.ToLower(name); strings.HasPrefix(lower, "acs:") || strings.HasPrefix(lower, "aliyun") {
		return bad("it cannot start with acs: or aliyun")
	}
	if strings.Contains(name, "http://") || strings.Contains(name, "https://") {
		return bad("it cannot contain http:// or https://")
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == ':' || r == '_' || r == '-') {
			return bad("it may contain only letters, digits, '.', ':', '_' and '-'")
		}
	}
	return nil
}

// checkDescription: 2–256 characters, not starting with http(s)://.
func checkDescription(desc string) *apiError {
	bad := func(why string) *apiError {
		return newErr(http.StatusBadRequest, "InvalidDescription.Malformed", "The specified description is wrongly formed: %s.", why)
	}
	if !utf8.ValidString(desc) {
		return bad("it is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(desc); n < 2 || n > 256 {
		return bad("it must be 2 to 256 characters long")
	}
	if strings.HasPrefix(desc, "http://") || strings.HasPrefix(desc, "https://") {
		return bad("it cannot start with http:// or https://")
	}
	return nil
}

// checkFamily: the rules of an image name, with its own error code.
func checkFamily(family string) *apiError {
	if err := checkImageName(family); err != nil {
		return newErr(http.StatusBadRequest, "InvalidImageFamily.Malformed", "The specified image family is wrongly formed: %s", strings.TrimPrefix(err.Message, "The specified image name is wrongly formed: "))
	}
	return nil
}

// checkTag: key 1–128 characters, not starting with aliyun or acs:, no
// http(s)://; value up to 128 characters.
func checkTag(key, value string) *apiError {
	badKey := func(why string) *apiError {
		return newErr(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified tag key is wrongly formed: %s.", why)
	}
	if !utf8.ValidString(key) || !utf8.ValidString(value) {
		return badKey("tags must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(key); n < 1 || n > maxTagLen {
		return badKey("it must be 1 to 128 characters long")
	}
	if lower := strings.ToLower(key); strings.HasPrefix(lower, "aliyun") || strings.HasPrefix(lower, "acs:") {
		return badKey("it cannot start with aliyun or acs:")
	}
	if strings.Contains(key, "http://") || strings.Contains(key, "https://") {
		return badKey("it cannot contain http:// or https://")
	}
	if utf8.RuneCountInString(value) > maxTagLen {
		return newErr(http.StatusBadRequest, "InvalidTagValue.Malformed", "The specified tag value is wrongly formed: it must be at most 128 characters long.")
	}
	return nil
}

// parseBool reads an optional boolean parameter.
func parseBool(p params, name string) (bool, *apiError) {
	switch strings.ToLower(p.get(name)) {
	case "":
		return false, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errInvalid(name, "%q is not true or false", truncate(p.get(name), 16))
}

// parseInt reads an optional integer parameter within [lo, hi].
func parseInt(p params, name string, def, lo, hi int) (int, *apiError) {
	s := p.get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errInvalid(name, "%q is not an integer from %d to %d", truncate(s, 16), lo, hi)
	}
	return n, nil
}

// splitList splits a comma list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// indexOf parses N in "Prefix.N" or "Prefix.N.Rest"; ok is false when the
// key does not start with prefix+".".
func indexOf(key, prefix string) (n int, rest string, ok bool, aerr *apiError) {
	if !strings.HasPrefix(key, prefix+".") {
		return 0, "", false, nil
	}
	numStr, rest, _ := strings.Cut(key[len(prefix)+1:], ".")
	n, err := strconv.Atoi(numStr)
	if err != nil || n < 1 || numStr[0] == '0' || len(numStr) > 6 {
		return 0, "", true, errInvalid(truncate(key, 64), "the index must be a positive integer")
	}
	return n, rest, true, nil
}

// parseList reads Prefix.1 … Prefix.N. Indices above max are refused, or
// ignored when ignoreExtra is set (as ModifyImageSharePermission does).
func parseList(p params, prefix string, max int, ignoreExtra bool) ([]string, *apiError) {
	byIndex := map[int]string{}
	for k, v := range p {
		n, rest, ok, aerr := indexOf(k, prefix)
		if !ok {
			continue
		}
		if aerr != nil {
			return nil, aerr
		}
		if rest != "" {
			return nil, errInvalid(truncate(k, 64), "unknown parameter")
		}
		if n > max {
			if ignoreExtra {
				continue
			}
			return nil, errInvalid(truncate(k, 64), "at most %d values are allowed", max)
		}
		if v != "" {
			byIndex[n] = v
		}
	}
	idx := make([]int, 0, len(byIndex))
	for n := range byIndex {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = byIndex[n]
	}
	return out, nil
}

// tagKV is one Tag.N pair; hasValue tells Tag.N.Value was given.
type tagKV struct {
	Key, Value string
	hasValue   bool
}

// parseTags reads Tag.N.Key / Tag.N.Value for N = 1..20 in index order.
// A value without a key is refused; keys are checked with checkTag.
func parseTags(p params, prefix string) ([]tagKV, *apiError) {
	byIndex := map[int]*tagKV{}
	for k, v := range p {
		n, rest, ok, aerr := indexOf(k, prefix)
		if !ok {
			continue
		}
		if aerr != nil {
			return nil, aerr
		}
		if n > maxTagsPerResource {
			return nil, newErr(http.StatusBadRequest, "InvalidTagCount", "The number of tags exceeds the limit (%d): %s.", maxTagsPerResource, truncate(k, 64))
		}
		t := byIndex[n]
		if t == nil {
			t = &tagKV{}
			byIndex[n] = t
		}
		switch rest {
		case "Key":
			t.Key = v
		case "Value":
			t.Value, t.hasValue = v, true
		default:
			return nil, errInvalid(truncate(k, 64), "unknown parameter; use %s.N.Key and %s.N.Value", prefix, prefix)
		}
	}
	idx := make([]int, 0, len(byIndex))
	for n := range byIndex {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]tagKV, 0, len(idx))
	seen := map[string]bool{}
	for _, n := range idx {
		t := byIndex[n]
		if t.Key == "" {
			return nil, newErr(http.StatusBadRequest, "InvalidTagKey.Malformed", "The specified tag key is wrongly formed: %s.%d.Key is missing.", prefix, n)
		}
		if aerr := checkTag(t.Key, t.Value); aerr != nil {
			return nil, aerr
		}
		if seen[t.Key] {
			return nil, newErr(http.StatusBadRequest, "InvalidParameter", "The specified tag key %q is given more than once.", truncate(t.Key, 64))
		}
		seen[t.Key] = true
		out = append(out, *t)
	}
	return out, nil
}

// requireRegion reads RegionId, which must name a known region.
func requireRegion(p params) (string, *apiError) {
	id := p.get("RegionId")
	if id == "" {
		return "", errMissing("RegionId")
	}
	if findRegion(id) == nil {
		return "", errRegionNotFound()
	}
	return id, nil
}

// require reads a mandatory parameter.
func require(p params, name string) (string, *apiError) {
	v := p.get(name)
	if v == "" {
		return "", errMissing(name)
	}
	return v, nil
}
