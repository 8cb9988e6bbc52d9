package policy

import (
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func img(id, name string, day int, tags map[string]string) cloud.Image {
	return cloud.Image{ID: id, Region: "cn-hangzhou", Name: name, Status: cloud.StatusAvailable, SizeGiB: 40,
		CreationTime: t0.AddDate(0, 0, day), Tags: tags}
}

// mustPolicy parses one policy (the text of its mapping, indented by 4).
func mustPolicy(t *testing.T, body string) *Policy {
	t.Helper()
	f, err := Parse("p.yaml", []byte("version: 1\npolicies:\n  - name: p\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	return &f.Policies[0]
}
