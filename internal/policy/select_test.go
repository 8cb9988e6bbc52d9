package policy

import (
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/cloud"
)

func ids(ims []cloud.Image) string {
	var s []string
	for _, im := range ims {
		s = append(s, im.ID)
	}
	return strings.Join(s, ",")
}

func TestSelect(t *testing.T) {
	golden := map[string]string{"role": "golden"}
	images := []cloud.Image{
		img("m-a", "golden-ubuntu-1", 1, golden),
		img("m-b", "golden-ubuntu-2", 2, golden),
		img("m-c", "golden-rocky-1", 3, golden),
		img("m-d", "golden-ubuntu-rc", 4, map[string]string{"role": "golden", "stage": "test"}),
		img("m-e", "app-1", 5, map[string]string{"role": "app"}),
		img("m-f", "golden-ubuntu-3", 2, golden), // same time as m-b: id order
		img("m-a", "golden-ubuntu-1", 1, golden), // listed twice
	}
	for _, tc := range []struct{ name, body, want string }{
		{"tags", `images: {tags: {role: golden}}`, "m-d,m-c,m-b,m-f,m-a"},
		{"glob", `images: {name: "golden-ubuntu-?"}`, "m-b,m-f,m-a"},
		{"all given must match", `images: {name: "golden-*", tags: {role: app}}`, ""},
		{"ids", `images: {ids: [m-aaaa, m-bbbb]}`, ""},
		{"newest", `images: {tags: {role: golden}, newest: 2}`, "m-d,m-c"},
		{"exclude tags", "images: {tags: {role: golden}}\n      exclude: {tags: {stage: test}}", "m-c,m-b,m-f,m-a"},
		{"exclude before newest", "images: {tags: {role: golden}, newest: 1}\n      exclude: {name: \"*-rc\"}", "m-c"},
		{"exclude any criterion", "images: {name: \"*\"}\n      exclude: {name: \"app-*\", tags: {stage: test}}", "m-c,m-b,m-f,m-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, "    source:\n      region: cn-hangzhou\n      "+tc.body+"\n    destinations: [cn-beijing]\n")
			if got := ids(p.Select(images)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	// Select by ids (real-looking ones).
	p := mustPolicy(t, "    source: {region: cn-hangzhou, images: {ids: [m-bp1aaaaaaaaaaaaaaaa]}}\n    destinations: [cn-beijing]\n")
	got := p.Select([]cloud.Image{img("m-bp1aaaaaaaaaaaaaaaa", "x", 1, nil), img("m-bp1bbbbbbbbbbbbbbbb", "y", 2, nil)})
	if ids(got) != "m-bp1aaaaaaaaaaaaaaaa" {
		t.Errorf("ids: %s", ids(got))
	}
}

func TestRender(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {name: "*"}}
    destinations: [cn-beijing]
    copy:
      name: "{{.SourceName | lower}}-{{.DestinationRegion}}-{{.Date}}-{{.Tags.os}}"
      description: 'copy of {{.SourceImageID}} from {{.SourceRegion}} by {{.Policy}}{{with index .Tags "team"}} for {{.}}{{end}}'
`)
	src := img("m-a", "Golden-Ubuntu", 3, map[string]string{"os": "ubuntu", "team": "platform"})
	name, desc, err := p.Render(src, Destination{Region: "cn-beijing"})
	if err != nil {
		t.Fatal(err)
	}
	if name != "golden-ubuntu-cn-beijing-20261104-ubuntu" {
		t.Errorf("name = %q", name)
	}
	if desc != "copy of m-a from cn-hangzhou by p for platform" {
		t.Errorf("description = %q", desc)
	}
	// A source whose name cannot make a valid copy name.
	src.Name = "1-starts-with-digit"
	p2 := mustPolicy(t, "    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n")
	_, _, err = p2.Render(src, Destination{Region: "cn-beijing"})
	if err == nil || err.Error() != `copy.name renders "1-starts-with-digit", which is not a valid ECS image name: it must start with a letter and hold only letters, digits, ".", ":", "_" and "-"` {
		t.Errorf("err = %v", err)
	}
	// A policy built by hand compiles its templates on use.
	hand := &Policy{Name: "h", Source: Source{Region: "cn-hangzhou"}, Copy: Copy{Name: "{{.Policy}}-{{.SourceName}}"}}
	if name, _, err := hand.Render(img("m-a", "x", 1, nil), Destination{Region: "cn-beijing"}); err != nil || name != "h-x" {
		t.Errorf("hand-built: %q %v", name, err)
	}
}

func TestCopyTagsAndFamily(t *testing.T) {
	p := mustPolicy(t, `    source: {region: cn-hangzhou, images: {name: "*"}}
    destinations: [cn-beijing]
    copy:
      tags: {team: platform, os: overridden}
      copy_source_tags: true
      image_family: inherit
`)
	src := img("m-a", "x", 1, map[string]string{"os": "ubuntu", "acs:system": "x", "replicatord:policy": "other", "Replicatord:job-id": "forged", "role": "golden"})
	src.Family = "golden-ubuntu"
	got := p.CopyTags(src)
	want := map[string]string{"team": "platform", "os": "overridden", "role": "golden",
		"replicatord:policy": "p", "replicatord:source-image": "m-a", "replicatord:source-region": "cn-hangzhou"}
	if len(got) != len(want) {
		t.Errorf("tags = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tag %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if p.Family(src) != "golden-ubuntu" {
		t.Errorf("family = %q", p.Family(src))
	}
	p.Copy.ImageFamily = "fixed"
	if p.Family(src) != "fixed" {
		t.Errorf("family = %q", p.Family(src))
	}
}
