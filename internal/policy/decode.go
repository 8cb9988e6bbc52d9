package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replicatord/replicatord/internal/input"
)

// maxNodes is how many nodes a walk may visit, counting every expansion of
// an alias. Real files have a few hundred; the budget turns a "billion
// laughs" file into one error instead of an exhausted machine.
const maxNodes = 100_000

// maxDepth caps nesting; the schema is at most 6 levels deep.
const maxDepth = 64

// decoder walks a yaml.Node tree and collects every problem it finds.
type decoder struct {
	file   string
	errs   ValidationErrors
	budget int
	broke  bool // budget exhausted: stop reporting, the file is refused anyway
	// onMapping, when set, is told the keys every decoded mapping accepts
	// (for the test that the example file documents every key).
	onMapping func(n *yaml.Node, fs fields)
}

// scope says where in the file a value is, for messages.
type scope struct {
	policy string // the policy's name, or ""
	label  string // "policies[3]" inside a policy without a valid name
	path   string // dotted key path, e.g. "source.images"
}

func (s scope) at(key string) scope {
	if s.path == "" {
		s.path = key
	} else {
		s.path += "." + key
	}
	return s
}

func (s scope) index(i int) scope {
	s.path = fmt.Sprintf("%s[%d]", s.path, i)
	return s
}

func (d *decoder) errorf(n *yaml.Node, sc scope, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if sc.label != "" {
		msg = sc.label + ": " + msg
	}
	e := ValidationError{File: d.file, Policy: sc.policy, Message: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs.Errors = append(d.errs.Errors, e)
}

// fieldErrorf reports a problem with the value of the key sc.path.
func (d *decoder) fieldErrorf(n *yaml.Node, sc scope, format string, args ...any) {
	d.errorf(n, sc, "%s: %s", sc.path, fmt.Sprintf(format, args...))
}

// resolve follows aliases and charges the budget.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	if !d.charge(1) {
		return nil
	}
	return n
}

func (d *decoder) charge(k int) bool {
	d.budget -= k
	if d.budget < 0 {
		if !d.broke {
			d.broke = true
			d.errorf(nil, scope{}, "the file expands to more than %d YAML nodes (through aliases?); refusing it", maxNodes)
		}
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "something else"
}

// pair is one key of a mapping, after merge keys (<<) are expanded.
type pair struct {
	key, val *yaml.Node
	name     string
}

// fields maps each known key of a mapping to the function that decodes its
// value. The function gets the key's scope (the mapping's, at the key), so
// that a key is spelled once: here, as the map's key. Adding a key to the
// file is one entry in the fields of its section (and its line in
// policies.example.yaml, which TestExampleDocumentsEveryKey checks).
type fields map[string]func(key, val *yaml.Node, sc scope)

// mapping decodes the mapping n, calling the handler of every known key and
// reporting unknown, repeated and non-string keys. It returns the keys seen.
func (d *decoder) mapping(n *yaml.Node, sc scope, fs fields) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	n = d.resolve(n)
	if n == nil {
		return seen
	}
	if n.Kind != yaml.MappingNode {
		if sc.path == "" {
			d.errorf(n, sc, "expected a mapping, got %s", kindName(n))
		} else {
			d.fieldErrorf(n, sc, "expected a mapping, got %s", kindName(n))
		}
		return seen
	}
	if d.onMapping != nil {
		d.onMapping(n, fs)
	}
	pairs := d.pairs(n, sc, 0)
	for _, p := range pairs {
		if prev, dup := seen[p.name]; dup {
			d.errorf(p.key, sc, "key %q is repeated (first at line %d)", p.name, prev.Line)
			continue
		}
		seen[p.name] = p.key
		fn, ok := fs[p.name]
		if !ok && sc == (scope{}) && strings.HasPrefix(p.name, "x-") {
			continue // top-level x-* keys hold YAML anchors for reuse, as in compose files
		}
		if !ok {
			if isSecretKey(p.name) || looksLikeAccessKey(p.name) {
				continue // reported by the secrets scan, without echoing it
			}
			d.errorf(p.key, sc, "%s", unknownKey(p.name, sc.path, fs))
			continue
		}
		fn(p.key, p.val, sc.at(p.name))
	}
	return seen
}

// pairs lists the key/value pairs of a mapping, expanding merge keys the way
// YAML does: keys written in the mapping win over merged ones.
func (d *decoder) pairs(n *yaml.Node, sc scope, depth int) []pair {
	var own, merged []pair
	if depth > 8 {
		d.errorf(n, sc, "merge keys (<<) nested too deeply")
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, sc, "keys must be strings, got %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			v = d.resolve(v)
			if v == nil {
				return nil
			}
			var srcs []*yaml.Node
			if v.Kind == yaml.SequenceNode {
				srcs = v.Content
			} else {
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				s = d.resolve(s)
				if s == nil {
					return nil
				}
				if s.Kind != yaml.MappingNode {
					d.errorf(s, sc, "a merge key (<<) needs a mapping or a list of mappings, got %s", kindName(s))
					continue
				}
				for _, p := range d.pairs(s, sc, depth+1) {
					if !hasPair(merged, p.name) {
						merged = append(merged, p)
					}
				}
			}
			continue
		}
		own = append(own, pair{key: k, val: v, name: k.Value})
	}
	for _, p := range merged {
		if !hasPair(own, p.name) {
			own = append(own, p)
		}
	}
	return own
}

func hasPair(ps []pair, name string) bool {
	for _, p := range ps {
		if p.name == name {
			return true
		}
	}
	return false
}

func unknownKey(name, path string, fs fields) string {
	where := ""
	if path != "" {
		where = " in " + path
	}
	msg := fmt.Sprintf("unknown key %s%s", quote(name), where)
	if s := suggest(name, fs); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		keys := make([]string, 0, len(fs))
		for k := range fs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		msg += " (known keys: " + strings.Join(keys, ", ") + ")"
	}
	return msg
}

// suggest returns the known key closest to name, when it is close enough to
// be a typo.
func suggest(name string, fs fields) string {
	best, bestD := "", 1<<30
	for k := range fs {
		dist := levenshtein(strings.ToLower(name), k)
		if dist < bestD || dist == bestD && k < best {
			best, bestD = k, dist
		}
	}
	limit := 2
	if len(name) > 8 {
		limit = 3
	}
	if bestD <= limit || strings.ReplaceAll(strings.ToLower(name), "-", "_") == best {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns the scalar n, or reports what was found instead. A null
// scalar counts as absent.
func (d *decoder) scalar(n *yaml.Node, sc scope, want string) (*yaml.Node, bool) {
	n = d.resolve(n)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.fieldErrorf(n, sc, "expected %s, got %s", want, kindName(n))
		return nil, false
	}
	if n.ShortTag() == "!!null" {
		return nil, false
	}
	return n, true
}

// str decodes a string. Any scalar is accepted and taken as written, so that
// an unquoted account id or version number reads as the user meant it.
func (d *decoder) str(n *yaml.Node, sc scope, out *string) {
	if s, ok := d.scalar(n, sc, "a string"); ok {
		*out = s.Value
	}
}

func (d *decoder) boolean(n *yaml.Node, sc scope, out *bool) {
	s, ok := d.scalar(n, sc, "true or false")
	if !ok {
		return
	}
	if s.ShortTag() != "!!bool" {
		d.fieldErrorf(s, sc, "expected true or false, got %s", quote(s.Value))
		return
	}
	_ = s.Decode(out)
}

func (d *decoder) integer(n *yaml.Node, sc scope, out *int64) bool {
	s, ok := d.scalar(n, sc, "an integer")
	if !ok {
		return false
	}
	if s.ShortTag() != "!!int" {
		d.fieldErrorf(s, sc, "expected an integer, got %s", quote(s.Value))
		return false
	}
	if err := s.Decode(out); err != nil {
		d.fieldErrorf(s, sc, "%s is not an integer that fits in 64 bits", quote(s.Value))
		return false
	}
	return true
}

// intIn decodes an integer and checks it lies in [lo, hi].
func (d *decoder) intIn(n *yaml.Node, sc scope, lo, hi int64, out *int64) bool {
	var v int64
	if !d.integer(n, sc, &v) {
		return false
	}
	if v < lo || v > hi {
		d.fieldErrorf(d.resolve(n), sc, "%d is out of range (%s)", v, rangeText(lo, hi))
		return false
	}
	*out = v
	return true
}

func rangeText(lo, hi int64) string {
	switch {
	case hi >= math.MaxInt32 && lo == 1:
		return "must be at least 1"
	case hi >= math.MaxInt32 && lo == 0:
		return "must not be negative"
	}
	return fmt.Sprintf("must be between %d and %d", lo, hi)
}

func (d *decoder) number(n *yaml.Node, sc scope, out *float64) bool {
	s, ok := d.scalar(n, sc, "a number")
	if !ok {
		return false
	}
	if t := s.ShortTag(); t != "!!int" && t != "!!float" {
		d.fieldErrorf(s, sc, "expected a number, got %s", quote(s.Value))
		return false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s.Value, "_", ""), 64)
	if err != nil {
		if err := s.Decode(&v); err != nil {
			d.fieldErrorf(s, sc, "%s is not a number", quote(s.Value))
			return false
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fieldErrorf(s, sc, "%s is not a finite number", quote(s.Value))
		return false
	}
	*out = v
	return true
}

// duration decodes a Go duration string such as 90s, 10m or 1h30m.
func (d *decoder) duration(n *yaml.Node, sc scope, out *time.Duration) bool {
	s, ok := d.scalar(n, sc, "a duration")
	if !ok {
		return false
	}
	v, err := time.ParseDuration(s.Value)
	if err != nil {
		hint := ""
		if s.ShortTag() == "!!int" {
			hint = " (add a unit)"
		}
		d.fieldErrorf(s, sc, "%s is not a duration%s; write it like 90s, 10m or 1h30m", quote(s.Value), hint)
		return false
	}
	*out = v
	return true
}

// strings decodes a list of strings.
func (d *decoder) strList(n *yaml.Node, sc scope) ([]string, []*yaml.Node) {
	n = d.resolve(n)
	if n == nil {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fieldErrorf(n, sc, "expected a list, got %s", kindName(n))
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	for i, c := range n.Content {
		var v string
		c = d.resolve(c)
		if c == nil {
			return out, nodes
		}
		if c.Kind != yaml.ScalarNode || c.ShortTag() == "!!null" {
			d.fieldErrorf(c, sc.index(i), "expected a string, got %s", kindName(c))
			continue
		}
		d.str(c, sc.index(i), &v)
		out = append(out, v)
		nodes = append(nodes, c)
	}
	return out, nodes
}

// strMap decodes a mapping of strings to strings (tags).
func (d *decoder) strMap(n *yaml.Node, sc scope) (map[string]string, map[string]*yaml.Node) {
	n = d.resolve(n)
	if n == nil {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		d.fieldErrorf(n, sc, "expected a mapping, got %s", kindName(n))
		return nil, nil
	}
	out := map[string]string{}
	keys := map[string]*yaml.Node{}
	for _, p := range d.pairs(n, sc, 0) {
		if prev, dup := keys[p.name]; dup {
			d.errorf(p.key, sc, "%s: key %s is repeated (first at line %d)", sc.path, quote(p.name), prev.Line)
			continue
		}
		keys[p.name] = p.key
		v := d.resolve(p.val)
		if v == nil {
			return out, keys
		}
		if v.Kind != yaml.ScalarNode {
			d.fieldErrorf(v, sc.at(p.name), "expected a string, got %s", kindName(v))
			continue
		}
		if v.ShortTag() == "!!null" {
			out[p.name] = ""
			continue
		}
		out[p.name] = v.Value
	}
	return out, keys
}

// quote quotes a value for a message, hiding anything that looks like a
// credential and shortening long values.
func quote(s string) string {
	if looksLikeAccessKey(s) {
		return "(a value that looks like an access key, not shown)"
	}
	return input.Quote(s)
}
