package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCloudKeys(t *testing.T) {
	f, err := Parse("policies.yaml", []byte(`version: 1
cloud:
  provider: aliyun
  network: vpc
  region: cn-shanghai
  endpoints:
    ap-southeast-1: ecs.ap-southeast-1.aliyuncs.com
    cn-beijing: https://ecs.cn-beijing.aliyuncs.com
  connect_timeout: 3s
  read_timeout: 20s
  max_concurrency: 16
`))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cloud
	if c.Network != NetworkVPC || c.Region != "cn-shanghai" || c.ConnectTimeout != 3*time.Second || c.ReadTimeout != 20*time.Second || c.MaxConcurrency != 16 {
		t.Errorf("cloud = %+v", c)
	}
	if len(c.Endpoints) != 2 || c.Endpoints["ap-southeast-1"] != "ecs.ap-southeast-1.aliyuncs.com" || c.Endpoints["cn-beijing"] != "https://ecs.cn-beijing.aliyuncs.com" {
		t.Errorf("endpoints = %v", c.Endpoints)
	}
}

func TestCloudKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"bad values", "version: 1\ncloud:\n  provider: aliyun\n  network: intranet\n  region: Shanghai\n  connect_timeout: 0s\n  read_timeout: soon\n  max_concurrency: 0\n", []string{
			`policies.yaml:4:12: cloud.network: "intranet" is not one of public, vpc`,
			`policies.yaml:5:11: cloud.region: "Shanghai" is not a region id (like cn-shanghai)`,
			`policies.yaml:6:20: cloud.connect_timeout: must be above 0`,
			`policies.yaml:7:17: cloud.read_timeout: "soon" is not a duration; write it like 90s, 10m or 1h30m`,
			`policies.yaml:8:20: cloud.max_concurrency: 0 is out of range (must be between 1 and 256)`,
		}},
		{"bad endpoints", "version: 1\ncloud:\n  provider: aliyun\n  endpoints: {Beijing: x, cn-beijing: ftp://x, cn-shanghai: \"\"}\n", []string{
			`policies.yaml:4:15: cloud.endpoints: "Beijing" is not a region id (like cn-shanghai)`,
			`policies.yaml:4:39: cloud.endpoints.cn-beijing: "ftp://x" is not an http(s) URL or a host[:port]`,
			`policies.yaml:4:61: cloud.endpoints.cn-shanghai: must not be empty`,
		}},
		{"vpc without region", "version: 1\ncloud:\n  provider: aliyun\n  network: vpc\n", []string{
			`policies.yaml:3:3: cloud.network vpc needs cloud.region: the region this daemon runs in (a VPC endpoint serves only callers in its own region)`,
		}},
		{"aliyun keys with simulated", "version: 1\ncloud:\n  network: vpc\n  region: cn-shanghai\n", []string{
			`policies.yaml:3:3: cloud.network is only for provider aliyun (the simulated cloud runs in the daemon)`,
			`policies.yaml:3:3: cloud.region is only for provider aliyun (the simulated cloud runs in the daemon)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errLines(t, tc.data)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestAllErrorsAtOnce: a file with static problems and an unknown region
// is reported whole in one pass: LoadLenient keeps what it decoded, and
// MergeErrors adds the cloud's view without repeating a place.
func TestAllErrorsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	data := `version: 1
daemon: {log_level: loud}
policies:
  - name: a
    source: {region: cn-hangzhou, images: {name: "x-*"}}
    destinations: [cn-beijing, xx-nowhere-1]
    interval: 1s
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadLenient(path)
	if err == nil || f == nil {
		t.Fatalf("LoadLenient = %v, %v; want a partial file and errors", f, err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted the file")
	}
	regions := map[string]bool{"cn-hangzhou": true, "cn-beijing": true}
	all := MergeErrors(err, f.ValidateEnv(Env{Regions: regions}))
	got := all.Error()
	for _, want := range []string{
		`log_level: "loud" is not one of`,
		`interval`,
		`destination region xx-nowhere-1 is not a region this account can use`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("merged errors lack %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 2 {
		t.Errorf("want 3 problems, got:\n%s", got)
	}
	if MergeErrors(nil, nil) != nil || MergeErrors(err, nil) != err {
		t.Error("MergeErrors with nothing to add changed the error")
	}
}

func TestUnknownEndpointRegion(t *testing.T) {
	f, err := Parse("policies.yaml", []byte("version: 1\ncloud:\n  provider: aliyun\n  endpoints: {cn-beijing: ecs.example.test, cn-nowhere: ecs.example.test}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = f.ValidateEnv(Env{Regions: map[string]bool{"cn-beijing": true, "cn-hangzhou": true}})
	if err == nil || !strings.Contains(err.Error(), "cloud.endpoints: cn-nowhere is not a region this account can use") || strings.Contains(err.Error(), "cn-beijing is not") {
		t.Errorf("ValidateEnv = %v", err)
	}
}
