package policy

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// refusedKeys are keys a section knows only to refuse them with a clearer
// message than "unknown key"; the example need not show them.
var refusedKeys = map[string]bool{
	"policies[].source.exclude.newest": true, // "newest is not allowed in exclude"
}

// commentedKey is a key shown commented out: "# key: value" at the column
// of its section's keys.
var commentedKey = regexp.MustCompile(`^( *)# ?([a-z_]+):(\s|$)`)

// The README says policies.example.yaml documents every key: every key the
// decoder accepts is in it, written or commented out at its place, and every
// key it shows (written or commented out) is one the decoder accepts. A key
// added to a fields map without its line in the example fails here.
func TestExampleDocumentsEveryKey(t *testing.T) {
	const name = "../../policies.example.yaml"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	type at struct{ line, col int }
	acceptedAt := map[at][]string{}
	d := &decoder{file: name, budget: maxNodes, onMapping: func(n *yaml.Node, fs fields) {
		for k := range fs {
			acceptedAt[at{n.Line, n.Column}] = append(acceptedAt[at{n.Line, n.Column}], k)
		}
	}}
	if _, err := parseWith(d, name, data); err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	accepted := map[string]bool{}  // "path.key", indices as []
	documented := map[string]int{} // "path.key" -> line
	// walk visits n, whose text lies in lines [start, end) (1-based).
	var walk func(n *yaml.Node, path string, start, end int)
	walk = func(n *yaml.Node, path string, start, end int) {
		prefix := path
		if prefix != "" {
			prefix += "."
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, start, end)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				e := end
				if i+1 < len(n.Content) {
					e = n.Content[i+1].Line
				}
				walk(c, path+"[]", c.Line, e)
			}
		case yaml.MappingNode:
			keys, known := acceptedAt[at{n.Line, n.Column}]
			if !known {
				return // a free-form mapping (tags, region_slots)
			}
			for _, k := range keys {
				accepted[prefix+k] = true
			}
			for l := max(start, 1); l < end && l <= len(lines); l++ {
				if m := commentedKey.FindStringSubmatch(lines[l-1]); m != nil && len(m[1]) == n.Column-1 {
					documented[prefix+m[2]] = l
				}
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				documented[prefix+k.Value] = k.Line
				e := end
				if i+2 < len(n.Content) {
					e = n.Content[i+2].Line
				}
				walk(v, prefix+k.Value, k.Line, e)
			}
		}
	}
	walk(&root, "", 1, len(lines)+1)

	var problems []string
	for k := range accepted {
		if _, ok := documented[k]; !ok && !refusedKeys[k] {
			problems = append(problems, "the decoder accepts "+k+" but policies.example.yaml does not show it")
		}
	}
	for k, line := range documented {
		if !accepted[k] {
			problems = append(problems, "policies.example.yaml shows "+k+" (line "+strconv.Itoa(line)+"), which the decoder does not accept")
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
	// The check itself must see the file's sections, or it proves nothing.
	for _, k := range []string{"version", "daemon.data_dir", "cloud.endpoint", "cloud.simulated.seed", "scheduler.poll_max",
		"policies[].source.images.ids", "policies[].destinations[].kms_key_id", "policies[].retention.per_family"} {
		if !accepted[k] || documented[k] == 0 {
			t.Errorf("the check did not find %s (accepted %v, documented at line %d)", k, accepted[k], documented[k])
		}
	}
}
