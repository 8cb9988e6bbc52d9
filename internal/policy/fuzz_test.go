package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/cloud"
)

// FuzzParse checks that no input panics, that a refused file always says
// why, and that an accepted file renders and plans without panicking.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../policies.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(valid))
	f.Add([]byte("version: 1\nx-a: &a {interval: 1h}\npolicies:\n  - <<: *a\n    name: a\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n"))
	f.Add([]byte("version: 1\npolicies: [{name: a, source: {region: cn-hangzhou, images: {ids: [m-aaaa]}}, destinations: [cn-hangzhou]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("a File along with an error")
			}
			ve, ok := err.(*ValidationErrors)
			if !ok || len(ve.Errors) == 0 {
				t.Fatalf("error %T without problems: %v", err, err)
			}
			if s := err.Error(); strings.Contains(s, "LTAI") && accessKeyRE.MatchString(s) {
				t.Fatalf("an access key is echoed: %s", s)
			}
			return
		}
		src := cloud.Image{ID: "m-aaaa", Name: "golden-x", Status: cloud.StatusAvailable, Tags: map[string]string{"role": "golden"}}
		for i := range file.Policies {
			p := &file.Policies[i]
			for _, d := range p.Destinations {
				_, _, _ = p.Render(src, d)
			}
			p.Plan(Observed{Sources: []cloud.Image{src}})
		}
	})
}

// FuzzRender checks that no template and no source image panics, and that
// a name Render returns is always a valid ECS image name.
func FuzzRender(f *testing.F) {
	f.Add("{{.SourceName}}-{{.DestinationRegion}}", "golden-ubuntu-22.04-20261101", "role", "golden")
	f.Add("{{.SourceName | lower | truncate 10}}-{{.Date}}", "Golden", "os", "ubuntu")
	f.Add("{{index .Tags \"os\"}}-{{.Policy}}", "x", "os", "")
	f.Add("{{range $k, $v := .Tags}}{{$k}}{{$v}}{{end}}", "", "a", "b")
	f.Add("{{replace \"-\" \"_\" .SourceName}}{{template \"x\"}}", "a-b", "", "")
	f.Fuzz(func(t *testing.T, tmpl, srcName, tagKey, tagValue string) {
		p := &Policy{Name: "p", Source: Source{Region: "cn-hangzhou"}, Copy: Copy{Name: tmpl, Description: tmpl}}
		src := cloud.Image{ID: "m-aaaa", Name: srcName, Tags: map[string]string{tagKey: tagValue}}
		name, desc, err := p.Render(src, Destination{Region: "cn-beijing"})
		if err != nil {
			return
		}
		if CheckImageName(name) != nil || CheckDescription(desc) != nil {
			t.Fatalf("Render returned invalid %q / %q", name, desc)
		}
	})
}
