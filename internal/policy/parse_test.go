package policy

import (
	"errors"
	"github.com/replicatord/replicatord/internal/job"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// valid is a small, valid file the cases below break one piece at a time.
const valid = `version: 1
policies:
  - name: golden-to-east
    source:
      region: cn-hangzhou
      images:
        tags: {role: golden}
    destinations:
      - region: cn-shanghai
      - region: ap-southeast-1
        encrypted: true
        kms_key_id: key-123
`

// errLines parses data and returns the problems as users see them.
func errLines(t *testing.T, data string) []string {
	t.Helper()
	f, err := Parse("policies.yaml", []byte(data))
	if err == nil {
		t.Fatalf("Parse accepted the file:\n%s", data)
	}
	if f != nil {
		t.Errorf("Parse returned a File along with errors")
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("error does not unwrap to ErrInvalidArgument: %v", err)
	}
	var ve *ValidationErrors
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, not *ValidationErrors", err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseValid(t *testing.T) {
	f, err := Parse("/etc/replicatord/policies.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 1 || len(f.Policies) != 1 {
		t.Fatalf("got %+v", f)
	}
	p := f.Policies[0]
	if p.Name != "golden-to-east" || p.Source.Region != "cn-hangzhou" || p.Source.Images.Tags["role"] != "golden" {
		t.Errorf("policy = %+v", p)
	}
	if len(p.Destinations) != 2 || !p.Destinations[1].Encrypted || p.Destinations[1].KMSKeyID != "key-123" {
		t.Errorf("destinations = %+v", p.Destinations)
	}
	// Defaults.
	if p.Interval != DefaultInterval || !p.Enabled || p.MaxSizeGiB != 0 || p.Retention.KeepLast != 0 {
		t.Errorf("policy defaults = %+v", p)
	}
	if f.Cloud.Provider != ProviderSimulated || f.Cloud.Simulated.TimeScale != 60 || f.Cloud.Simulated.MaxImageSizeGiB != 200 {
		t.Errorf("cloud defaults = %+v", f.Cloud)
	}
	s := f.Scheduler
	if s.CopySlotsPerRegion != 5 || s.Lookahead != 30 || s.MaxAttempts != 5 || s.APIRatePerSecond != 13 || s.PollMin != 2*time.Second || s.PollMax != 45*time.Minute ||
		s.LookaheadTime != 15*time.Minute || s.DetectionLag != 15*time.Minute ||
		s.RetryBase != time.Second || s.QuotaWait != time.Minute || s.CallTimeout != 30*time.Second {
		t.Errorf("scheduler defaults = %+v", s)
	}
	if f.Daemon.JobRetention != 30*24*time.Hour {
		t.Errorf("job_retention default = %s, want 30 days", f.Daemon.JobRetention)
	}
	if g, err := Parse("", []byte("version: 1\ndaemon: {job_retention: 0}\n")); err != nil || g.Daemon.JobRetention != 0 {
		t.Errorf("job_retention 0 (keep forever): %v, %v", g, err)
	}
	// A relative data_dir is relative to the file's directory.
	if f.Daemon.DataDir != "/etc/replicatord/.replicatord" || f.Daemon.LogFormat != "text" || f.Daemon.LogLevel != "info" ||
		f.Daemon.Owner != job.DefaultOwner || f.Scheduler.MaxRetries != DefaultMaxRetries {
		t.Errorf("daemon = %+v", f.Daemon)
	}
	if !strings.Contains(p.Definition(), "name: golden-to-east") {
		t.Errorf("definition = %q", p.Definition())
	}
}

func TestParseFullFile(t *testing.T) {
	f, err := Parse("", []byte(`version: 1
daemon: {data_dir: /var/lib/replicatord, listen: "127.0.0.1:7443", metrics_listen: ":9464", log_format: json, log_level: debug, job_retention: 7d}
cloud: {provider: aliyun, endpoint: "http://127.0.0.1:8086"}
scheduler:
  copy_slots_per_region: 3
  region_slots: {cn-shanghai: 2}
  lookahead: 0
  max_attempts: 7
  api_rate_per_second: 2.5
  poll_min: 1s
  poll_max: 30s
  copy_conflict: true
  retry_base: 250ms
  quota_wait: 5m
  call_timeout: 45s
x-defaults: &d
  interval: 1h
  priority: -5
policies:
  - <<: *d
    name: a
    source:
      region: cn-hangzhou
      images: {ids: [m-bp1aaaaaaaaaaaaaaaa], name: "golden-*", tags: {role: golden}, newest: 2}
      exclude: {name: "*-rc*"}
    destinations: [cn-beijing, {region: cn-shanghai}]
    copy:
      name: "{{.SourceName | lower}}-{{.Date}}"
      description: "from {{.SourceRegion}}"
      tags: {team: platform}
      copy_source_tags: true
      image_family: golden-ubuntu
      share_with_accounts: [1234567890, "2345678901"]
    retention: {keep_last: 3}
    max_size_gib: 500
    enabled: false
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Daemon.DataDir != "/var/lib/replicatord" || f.Daemon.Listen != "127.0.0.1:7443" || f.Daemon.LogFormat != "json" || f.Daemon.JobRetention != 7*24*time.Hour {
		t.Errorf("daemon = %+v", f.Daemon)
	}
	if f.Cloud.Provider != ProviderAliyun || f.Cloud.Endpoint != "http://127.0.0.1:8086" {
		t.Errorf("cloud = %+v", f.Cloud)
	}
	s := f.Scheduler
	if s.CopySlotsPerRegion != 3 || s.RegionSlots["cn-shanghai"] != 2 || s.Lookahead != 0 || s.MaxAttempts != 7 ||
		s.APIRatePerSecond != 2.5 || s.PollMin != time.Second || s.PollMax != 30*time.Second || !s.CopyConflict ||
		s.RetryBase != 250*time.Millisecond || s.QuotaWait != 5*time.Minute || s.CallTimeout != 45*time.Second {
		t.Errorf("scheduler = %+v", s)
	}
	p := f.Policies[0]
	// Merged from the x-defaults anchor.
	if p.Interval != time.Hour || p.Priority != -5 {
		t.Errorf("merged keys: interval %v priority %d", p.Interval, p.Priority)
	}
	if p.Enabled || p.MaxSizeGiB != 500 || p.Retention.KeepLast != 3 {
		t.Errorf("policy = %+v", p)
	}
	sel := p.Source.Images
	if len(sel.IDs) != 1 || sel.Name != "golden-*" || sel.Newest != 2 || p.Source.Exclude.Name != "*-rc*" {
		t.Errorf("selector = %+v exclude %+v", sel, p.Source.Exclude)
	}
	if len(p.Destinations) != 2 || p.Destinations[0].Region != "cn-beijing" || p.Destinations[1].Region != "cn-shanghai" {
		t.Errorf("destinations = %+v", p.Destinations)
	}
	c := p.Copy
	if !c.CopySourceTags || c.ImageFamily != "golden-ubuntu" || len(c.ShareWithAccounts) != 2 || c.ShareWithAccounts[0] != "1234567890" || c.Tags["team"] != "platform" {
		t.Errorf("copy = %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []string
	}{
		{"empty", "", []string{`policies.yaml: the file is empty; it needs at least "version: 1"`}},
		{"only comments", "# nothing\n", []string{`policies.yaml:1:1: the file is empty; it needs at least "version: 1"`}},
		{"not a mapping", "- a\n- b\n", []string{`policies.yaml:1:1: expected a mapping, got a list`}},
		{"syntax", "version: 1\npolicies: [\n", []string{`policies.yaml:2:1: YAML syntax error: did not find expected node content`}},
		{"tab", "version: 1\npolicies:\n\t- name: a\n", []string{`policies.yaml:3:1: YAML syntax error: found character that cannot start any token`}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{`policies.yaml:2:1: the file holds more than one YAML document ("---"); put everything in one`}},
		{"no version", "policies: []\n", []string{`policies.yaml:1:1: version is missing; add "version: 1" at the top`}},
		{"version 2", "version: 2\n", []string{`policies.yaml:1:10: unsupported version 2 (this replicatord reads 1)`}},
		{"version string", "version: one\n", []string{`policies.yaml:1:10: version: expected an integer, got "one"`}},
		{"unknown top key", "version: 1\npolices: []\n", []string{`policies.yaml:2:1: unknown key "polices" (did you mean "policies"?)`}},
		{"unknown key far from any", "version: 1\nzzz: 1\n", []string{`policies.yaml:2:1: unknown key "zzz" (known keys: cloud, daemon, policies, scheduler, store, version)`}},
		{"repeated key", "version: 1\nversion: 1\n", []string{`policies.yaml:2:1: key "version" is repeated (first at line 1)`}},
		{"daemon", "version: 1\ndaemon:\n  log_format: xml\n  log_level: loud\n  data_dir: \"\"\n  listen: nope\n  metrics_listen: \"localhost:http99\"\n", []string{
			`policies.yaml:3:15: daemon.log_format: "xml" is not one of text, json`,
			`policies.yaml:4:14: daemon.log_level: "loud" is not one of debug, info, warn, error`,
			`policies.yaml:5:13: daemon.data_dir: must not be empty (the default is .replicatord)`,
			`policies.yaml:6:11: daemon.listen: "nope" is not host:port`,
			`policies.yaml:7:19: daemon.metrics_listen: "localhost:http99" has a bad port`,
		}},
		{"owner", "version: 1\ndaemon:\n  owner: \"team a\"\n", []string{
			`policies.yaml:3:10: daemon.owner: owner "team a" holds ' ': only printable ASCII without spaces (it is the replicatord:owner tag value; the default is replicatord)`}},
		{"owner empty", "version: 1\ndaemon:\n  owner: \"\"\n", []string{
			`policies.yaml:3:10: daemon.owner: owner must not be empty (it is the replicatord:owner tag value; the default is replicatord)`}},
		{"max_retries", "version: 1\nscheduler:\n  max_retries: 0\n", []string{
			`policies.yaml:3:16: scheduler.max_retries: 0 is out of range (must be at least 1)`}},
		{"cloud", "version: 1\ncloud:\n  provider: aws\n", []string{`policies.yaml:3:13: cloud.provider: "aws" is not one of simulated, aliyun`}},
		{"endpoint with simulated", "version: 1\ncloud:\n  endpoint: http://127.0.0.1:8086\n", []string{
			`policies.yaml:3:3: cloud.endpoint is only for provider aliyun (the simulated cloud runs in the daemon)`}},
		{"simulated with aliyun", "version: 1\ncloud:\n  provider: aliyun\n  simulated: {seed: 2}\n  endpoint: ftp://x\n", []string{
			`policies.yaml:4:14: cloud.simulated is only for provider simulated`,
			`policies.yaml:5:13: cloud.endpoint: "ftp://x" is not an http(s) URL or a host[:port]`,
		}},
		{"simulated knobs", "version: 1\ncloud:\n  simulated:\n    time_scale: 0\n    copy_rate_mibps: -1\n    startup_delay: soon\n    compliance_rule: strict\n    denied_routes: [cn-hangzhou-ap-southeast-1]\n    max_image_size_gib: 0\n", []string{
			`policies.yaml:4:17: cloud.simulated.time_scale: must be above 0 (1 = real ECS speed)`,
			`policies.yaml:5:22: cloud.simulated.copy_rate_mibps: must be above 0`,
			`policies.yaml:6:20: cloud.simulated.startup_delay: "soon" is not a duration; write it like 90s, 10m or 1h30m`,
			`policies.yaml:7:22: cloud.simulated.compliance_rule: "strict" is not one of , mainland-only`,
			`policies.yaml:8:21: cloud.simulated.denied_routes[0]: "cn-hangzhou-ap-southeast-1" is not a route; write it as source>destination, e.g. cn-hangzhou>ap-southeast-1`,
			`policies.yaml:9:25: cloud.simulated.max_image_size_gib: 0 is out of range (must be at least 1)`,
		}},
		{"scheduler", "version: 1\nscheduler:\n  copy_slots_per_region: 0\n  lookahead: -1\n  max_attempts: 0\n  api_rate_per_second: fast\n  poll_min: 10s\n  poll_max: 5s\n  region_slots: {Shanghai: 2, cn-beijing: 0}\n  copy_conflict: maybe\n", []string{
			`policies.yaml:3:26: scheduler.copy_slots_per_region: 0 is out of range (must be at least 1)`,
			`policies.yaml:4:14: scheduler.lookahead: -1 is out of range (must not be negative)`,
			`policies.yaml:5:17: scheduler.max_attempts: 0 is out of range (must be at least 1)`,
			`policies.yaml:6:24: scheduler.api_rate_per_second: expected a number, got "fast"`,
			`policies.yaml:8:13: scheduler.poll_max (5s) is below poll_min (10s)`,
			`policies.yaml:9:18: scheduler.region_slots: "Shanghai" is not a region id (like cn-shanghai)`,
			`policies.yaml:9:43: scheduler.region_slots.cn-beijing: 0 is out of range (must be at least 1)`,
			`policies.yaml:10:18: scheduler.copy_conflict: expected true or false, got "maybe"`,
		}},
		{"scheduler look-ahead and lag", "version: 1\nscheduler:\n  lookahead_time: 0s\n  detection_lag: soon\n", []string{
			`policies.yaml:3:19: scheduler.lookahead_time: must be above 0`,
			`policies.yaml:4:18: scheduler.detection_lag: "soon" is not a duration; write it like 90s, 10m or 1h30m`,
		}},
		{"scheduler durations", "version: 1\nscheduler:\n  retry_base: 0s\n  quota_wait: 2h\n  call_timeout: 30\n", []string{
			`policies.yaml:3:15: scheduler.retry_base: 0s is out of range (must be from 10ms to 2m0s)`,
			`policies.yaml:4:15: scheduler.quota_wait: 2h0m0s is out of range (must be from 1s to 1h0m0s)`,
			`policies.yaml:5:17: scheduler.call_timeout: "30" is not a duration (add a unit); write it like 90s, 10m or 1h30m`,
		}},
		{"job retention short", "version: 1\ndaemon:\n  job_retention: 10m\n", []string{
			`policies.yaml:3:18: daemon.job_retention: must be 0 (keep finished jobs forever) or at least 1h0m0s, so that clients can read a job's result`}},
		{"job retention negative", "version: 1\ndaemon:\n  job_retention: -1h\n", []string{
			`policies.yaml:3:18: daemon.job_retention: must not be negative`}},
		{"job retention days", "version: 1\ndaemon:\n  job_retention: 1.5d\n", []string{
			`policies.yaml:3:18: daemon.job_retention: "1.5d" is not a number of days from 0 to 36500; write it like 30d, or as a duration like 720h`}},
		{"wrong types", "version: 1\nscheduler: [1]\npolicies: {a: b}\n", []string{
			`policies.yaml:2:12: scheduler: expected a mapping, got a list`,
			`policies.yaml:3:11: policies: expected a list of policies, got a mapping`,
		}},
		{"destination equals source", strings.Replace(valid, "region: cn-shanghai", "region: cn-hangzhou", 1), []string{
			`policies.yaml:9:17: policy "golden-to-east": destination region cn-hangzhou equals the source region`}},
		{"duplicate destination", strings.Replace(valid, "region: ap-southeast-1", "region: cn-shanghai", 1), []string{
			`policies.yaml:10:17: policy "golden-to-east": destination region cn-shanghai is listed twice (first at line 9)`}},
		{"kms without encrypted", strings.Replace(valid, "encrypted: true", "encrypted: false", 1), []string{
			`policies.yaml:12:21: policy "golden-to-east": destinations[1].kms_key_id requires encrypted: true (it is false)`}},
		{"kms without encrypted key", strings.Replace(valid, "        encrypted: true\n", "", 1), []string{
			`policies.yaml:11:21: policy "golden-to-east": destinations[1].kms_key_id requires encrypted: true`}},
		{"duplicate names", valid + "  - name: golden-to-east\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n", []string{
			`policies.yaml:13:11: policy "golden-to-east": the name is already used by the policy at line 3; policy names must be unique`}},
		{"bad name", strings.Replace(valid, "golden-to-east", "Golden_To_East", 1), []string{
			`policies.yaml:3:11: policies[0]: name "Golden_To_East" must be 1 to 63 lowercase letters, digits and "-", starting with a letter or digit`}},
		{"missing fields", "version: 1\npolicies:\n  - enabled: true\n", []string{
			`policies.yaml:3:5: policies[0]: name is missing`,
			`policies.yaml:3:5: policies[0]: source is missing`,
			`policies.yaml:3:5: policies[0]: destinations is missing`,
		}},
		{"empty selectors", "version: 1\npolicies:\n  - name: a\n    source: {region: cn-hangzhou, images: {newest: 2}}\n    destinations: []\n", []string{
			`policies.yaml:4:43: policy "a": source.images needs at least one of ids, name or tags (use name: "*" to mean every image)`,
			`policies.yaml:5:19: policy "a": destinations: needs at least one destination region`,
		}},
		{"no images", "version: 1\npolicies:\n  - name: a\n    source: {region: cn-hangzhou}\n    destinations: [cn-beijing]\n", []string{
			`policies.yaml:4:13: policy "a": source.images is missing; give ids, name or tags to choose the images`}},
		{"selectors", "version: 1\npolicies:\n  - name: a\n    source:\n      region: Hangzhou\n      images: {ids: [m-abc, m-bp1aaaaaaaaaaaaaaaa, m-bp1aaaaaaaaaaaaaaaa], name: \"golden-[\", newest: -1, nmae: x}\n      exclude: {newest: 1}\n    destinations: [cn-beijing]\n", []string{
			`policies.yaml:5:15: policy "a": source.region: "Hangzhou" is not a region id (like cn-hangzhou)`,
			`policies.yaml:6:22: policy "a": source.images.ids[0]: "m-abc" is not an image id (like m-bp1abcdefghijklmnopq)`,
			`policies.yaml:6:52: policy "a": source.images.ids[2]: m-bp1aaaaaaaaaaaaaaaa is listed twice`,
			`policies.yaml:6:82: policy "a": source.images.name: "golden-[" is not a valid glob: syntax error in pattern`,
			`policies.yaml:6:102: policy "a": source.images.newest: -1 is negative; use a positive count, or leave it out for every match`,
			`policies.yaml:6:106: policy "a": unknown key "nmae" in source.images (did you mean "name"?)`,
			`policies.yaml:7:17: policy "a": source.exclude: newest is not allowed in exclude`,
		}},
		{"policy numbers", valid + "    retention: {keep_last: 0}\n    interval: 30s\n    max_size_gib: -5\n    priority: high\n    enabled: \"yes\"\n    intervall: 10m\n", []string{
			`policies.yaml:13:28: policy "golden-to-east": retention.keep_last: 0 is out of range (must be at least 1)`,
			`policies.yaml:14:15: policy "golden-to-east": interval: 30s is below the minimum of 1m (each run lists images in every region of the policy)`,
			`policies.yaml:15:19: policy "golden-to-east": max_size_gib: -5 is out of range (must be at least 1)`,
			`policies.yaml:16:15: policy "golden-to-east": priority: expected an integer, got "high"`,
			`policies.yaml:17:14: policy "golden-to-east": enabled: expected true or false, got "yes"`,
			`policies.yaml:18:5: policy "golden-to-east": unknown key "intervall" (did you mean "interval"?)`,
		}},
		{"per_family without keep_last", valid + "    retention: {per_family: true}\n", []string{
			`policies.yaml:13:16: policy "golden-to-east": retention.per_family needs keep_last`}},
		{"interval without unit", valid + "    interval: 10\n", []string{
			`policies.yaml:13:15: policy "golden-to-east": interval: "10" is not a duration (add a unit); write it like 90s, 10m or 1h30m`}},
		{"priority range", valid + "    priority: 5000\n", []string{
			`policies.yaml:13:15: policy "golden-to-east": priority: 5000 is out of range (must be between -1000 and 1000)`}},
		{"copy", valid + "    copy:\n      tags: {\"aliyun:x\": y, \"replicatord:policy\": z}\n      share_with_accounts: [abc, 123, 123]\n      image_family: \"9bad\"\n      name: \"\"\n", []string{
			`policies.yaml:14:14: policy "golden-to-east": copy.tags: tag key "aliyun:x" must not start with "acs:" or "aliyun"`,
			`policies.yaml:14:29: policy "golden-to-east": copy.tags: tag key "replicatord:policy" is reserved: replicatord sets the replicatord:* lineage tags itself`,
			`policies.yaml:15:29: policy "golden-to-east": copy.share_with_accounts[0]: "abc" is not an Alibaba Cloud account id (digits only)`,
			`policies.yaml:15:39: policy "golden-to-east": copy.share_with_accounts[2]: account 123 is listed twice`,
			`policies.yaml:16:21: policy "golden-to-east": copy.image_family: image family "9bad" must start with a letter and hold only letters, digits, ":", "_" and "-" (or use inherit)`,
			`policies.yaml:17:13: policy "golden-to-east": copy.name: must not be empty (leave it out for {{.SourceName}})`,
		}},
		{"template parse", valid + "    copy:\n      name: \"{{.SourceName\"\n      description: \"{{if}}\"\n", []string{
			`policies.yaml:14:13: policy "golden-to-east": copy.name is not a valid template: unclosed action`,
			`policies.yaml:15:20: policy "golden-to-east": copy.description is not a valid template: missing value for if`,
		}},
		{"template render", valid + "    copy:\n      name: \"http://{{.SourceName}}\"\n      description: \"{{.Nope}}\"\n", []string{
			`policies.yaml:14:13: policy "golden-to-east": test render failed: copy.name renders "http://sample-image-20260101", which is not a valid ECS image name: it must not contain http:// or https://`,
			`policies.yaml:15:20: policy "golden-to-east": test render failed: copy.description: .Nope is not a template field; the fields are .SourceName, .SourceImageID, .SourceRegion, .DestinationRegion, .Policy, .Date and .Tags`,
		}},
		{"template recursion", valid + "    copy:\n      name: '{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}'\n", []string{
			`policies.yaml:14:13: policy "golden-to-east": copy.name is not a valid template: define, block and template actions are not supported`}},
		{"template too long", valid + "    copy:\n      name: 'a" + strings.Repeat("{{.SourceName}}", 60) + "'\n", []string{
			`policies.yaml:14:13: policy "golden-to-east": test render failed: copy.name: renders longer than 1024 characters`}},
		{"template bad chars", valid + "    copy:\n      name: \"{{.SourceName}} copy\"\n", []string{
			`policies.yaml:14:13: policy "golden-to-east": test render failed: copy.name renders "sample-image-20260101 copy", which is not a valid ECS image name: it must start with a letter and hold only letters, digits, ".", ":", "_" and "-"`}},
		{"destination shapes", "version: 1\npolicies:\n  - name: a\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [[x], {encrypted: true}, {region: cn-beijing, encrypted: 1}]\n", []string{
			`policies.yaml:5:20: policy "a": destinations[0]: expected a mapping, got a list`,
			`policies.yaml:5:25: policy "a": destinations[1].region is missing`,
			`policies.yaml:5:76: policy "a": destinations[2].encrypted: expected true or false, got "1"`,
		}},
		{"secrets", "version: 1\ncloud:\n  provider: aliyun\n  access_key_id: LTAI5tAbCdEfGhIjKlMnOp\n  Access-Key-Secret: hunter2\npolicies:\n  - name: a\n    source: {region: cn-hangzhou, images: {name: \"LTAI5tAbCdEfGhIjKlMnOp\"}}\n    destinations: [cn-beijing]\n    x: {deep: {password: p}}\n", []string{
			`policies.yaml:4:3: key "access_key_id" holds a secret; ` + credentialHint,
			`policies.yaml:4:18: a value looks like an Alibaba Cloud AccessKey ID (not shown); ` + credentialHint,
			`policies.yaml:5:3: key "Access-Key-Secret" holds a secret; ` + credentialHint,
			`policies.yaml:8:50: a value looks like an Alibaba Cloud AccessKey ID (not shown); ` + credentialHint,
			`policies.yaml:10:5: policy "a": unknown key "x" (known keys: copy, destinations, enabled, interval, max_size_gib, name, priority, retention, source)`,
			`policies.yaml:10:16: key "password" holds a secret; ` + credentialHint,
		}},
		{"reserved prefix in any case", valid + "    copy: {tags: {Replicatord:policy: x, REPLICATORD:job-id: y}}\n", []string{
			`policies.yaml:13:19: policy "golden-to-east": copy.tags: tag key "Replicatord:policy" is reserved: replicatord sets the replicatord:* lineage tags itself`,
			`policies.yaml:13:42: policy "golden-to-east": copy.tags: tag key "REPLICATORD:job-id" is reserved: replicatord sets the replicatord:* lineage tags itself`,
		}},
		{"control characters", valid + "    copy:\n      tags: {\"te\\0am\": x, env: \"a\\eb\"}\n      description: \"two\\nlines\"\n", []string{
			`policies.yaml:14:14: policy "golden-to-east": copy.tags: tag key "te\x00am" contains the control character U+0000 at byte 2 (control characters, NUL included, are not allowed)`,
			`policies.yaml:14:27: policy "golden-to-east": copy.tags: the value of tag "env" contains the control character U+001B at byte 1 (control characters, NUL included, are not allowed)`,
			`policies.yaml:15:20: policy "golden-to-east": test render failed: copy.description renders "two\nlines", which is not a valid ECS description: it contains the control character U+000A at byte 3 (control characters, NUL included, are not allowed)`,
		}},
		{"long value clipped", "version: 1\npolicies:\n  - name: " + strings.Repeat("K", 5000) + "\n    source: {region: cn-hangzhou, images: {name: \"*\"}}\n    destinations: [cn-beijing]\n", []string{
			`policies.yaml:3:11: policies[0]: name "` + strings.Repeat("K", 200) + `"…(5000 bytes) must be 1 to 63 lowercase letters, digits and "-", starting with a letter or digit`,
		}},
		{"repeated tag key", valid + "    copy: {tags: {a: b, a: c}}\n", []string{
			`policies.yaml:13:25: policy "golden-to-east": copy.tags: key "a" is repeated (first at line 13)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errLines(t, tc.data)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, l := range got {
				if strings.Contains(l, "hunter2") || strings.Contains(l, "LTAI5t") {
					t.Errorf("a secret is echoed: %s", l)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || f.Daemon.DataDir != filepath.Join(dir, ".replicatord") {
		t.Errorf("path %q data dir %q", f.Path, f.Daemon.DataDir)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || err.Error() != filepath.Join(dir, "missing.yaml")+": cannot read the policy file: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(valid+"#"+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Load(big); err == nil || !strings.Contains(err.Error(), "the file is larger than 1048576 bytes") {
		t.Errorf("big file: %v", err)
	}
}

func TestExampleFileIsValid(t *testing.T) {
	f, err := Load("../../policies.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Policies) < 2 || f.Cloud.Provider != ProviderSimulated {
		t.Fatalf("example: %d policies, provider %q", len(f.Policies), f.Cloud.Provider)
	}
	regions := map[string]bool{"cn-hangzhou": true, "cn-shanghai": true, "cn-beijing": true, "ap-southeast-1": true}
	if err := f.ValidateEnv(Env{Regions: regions, Denied: DeniedByRule(f.Cloud.Simulated.ComplianceRule, f.Cloud.Simulated.DeniedRoutes)}); err != nil {
		t.Fatal(err)
	}
}
