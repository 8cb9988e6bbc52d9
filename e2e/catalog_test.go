package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/replicatord/replicatord/internal/cloud"
)

// Against the realistic catalogue (public, shared and marketplace images
// next to the account's own, as ecsemu serves by default), a policy whose
// name glob also matches public and shared images copies only the
// account's own: the daemon asks DescribeImages for ImageOwnerAlias=self.
// Had it listed every image, it would have tried to copy the public and
// shared Ubuntu images and failed (ECS refuses both across regions).
func TestPolicyCopiesOnlyOwnImagesAmongPublicOnes(t *testing.T) {
	e := newEnv(t, "--time-scale", "400")
	e.writeConfig(`policies:
  - name: ubuntu
    source:
      region: cn-hangzhou
      images: {name: "*ubuntu*"}
    destinations: [cn-beijing]
    interval: 10m
`)
	// The glob matches public and shared images in the source region.
	all := e.adminCatalogue()
	if all.system == 0 || all.others == 0 {
		t.Fatalf("the catalogue has %d public and %d shared Ubuntu images in cn-hangzhou; the test needs both", all.system, all.others)
	}
	e.startDaemon()
	// The account's own Available Ubuntu images in cn-hangzhou.
	own := map[string]bool{"m-bp1g7004ksh0oeuco4r2": true, "m-bp1d3yhs0a1ud8ipq3lj": true, "m-bp1a8xw2m1k5lq0rvt7e": true}
	e.waitJobs("ubuntu", len(own))
	out, _ := e.ctl("jobs", "--policy", "ubuntu", "--all", "-o", "json")
	jobs := jobsIn(t, out)
	if len(jobs) != len(own) {
		t.Errorf("policy made %d jobs, want %d (one per own image)", len(jobs), len(own))
	}
	for id, j := range jobs {
		if !own[j.SourceImageID] || j.State != "JOB_STATE_SUCCEEDED" {
			t.Errorf("job %s: source %s, state %s; want only own images, all SUCCEEDED", id, j.SourceImageID, j.State)
		}
	}
	st := e.stats()
	for code, n := range st["CopyImage"] {
		if code != "200" {
			t.Errorf("CopyImage answered %s %d times: the daemon tried to copy an image that is not its own", code, n)
		}
	}
}

type catalogueCount struct{ system, others int }

// adminCatalogue counts the Ubuntu images of the catalogue in cn-hangzhou,
// asked through the SDK as any client would.
func (e *env) adminCatalogue() catalogueCount {
	e.t.Helper()
	var c catalogueCount
	for _, alias := range []string{"system", "others"} {
		imgs := e.listAlias("cn-hangzhou", alias)
		for _, name := range imgs {
			if strings.Contains(name, "ubuntu") {
				if alias == "system" {
					c.system++
				} else {
					c.others++
				}
			}
		}
	}
	return c
}

func (e *env) listAlias(region, alias string) []string {
	e.t.Helper()
	imgs, err := e.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, OwnerAlias: alias})
	if err != nil {
		e.t.Fatal(err)
	}
	names := make([]string, len(imgs))
	for i, im := range imgs {
		names[i] = im.Name
	}
	return names
}
