package policy

import (
	"fmt"
	"os"
	"testing"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/job"
)

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile("../../policies.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("policies.example.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan plans 500 sources into 5 regions, half already copied (with
// their succeeded jobs), with retention on.
func BenchmarkPlan(b *testing.B) {
	f, err := Parse("p.yaml", []byte(`version: 1
policies:
  - name: p
    source: {region: cn-hangzhou, images: {tags: {role: golden}}}
    destinations: [cn-shanghai, cn-beijing, cn-shenzhen, ap-southeast-1, us-west-1]
    copy: {name: "{{.SourceName}}-{{.DestinationRegion}}", copy_source_tags: true}
    retention: {keep_last: 400}
`))
	if err != nil {
		b.Fatal(err)
	}
	p := &f.Policies[0]
	obs := Observed{Copies: map[string][]cloud.Image{}}
	for i := 0; i < 500; i++ {
		s := img(fmt.Sprintf("m-src%05d", i), fmt.Sprintf("golden-%05d", i), i%300, map[string]string{"role": "golden", "os": "linux"})
		obs.Sources = append(obs.Sources, s)
		if i%2 == 1 {
			continue
		}
		for _, d := range p.Destinations {
			id := fmt.Sprintf("m-%s-%05d", d.Region, i)
			obs.Copies[d.Region] = append(obs.Copies[d.Region], cloud.Image{ID: id, Region: d.Region, Status: cloud.StatusAvailable,
				Tags: map[string]string{job.TagPolicy: "p", job.TagSourceImage: s.ID}})
			obs.Jobs = append(obs.Jobs, &job.Job{ID: "j-" + id, Policy: "p", SourceImageID: s.ID, DestinationRegion: d.Region,
				DestinationImageID: id, State: job.StateSucceeded})
		}
	}
	for b.Loop() {
		if items := p.Plan(obs); len(items) < 2000 {
			b.Fatalf("%d items", len(items))
		}
	}
}
