package ecsemu_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

// restartable is an emulator on a state file that can be stopped and
// started again on the same file and the same fake clock.
type restartable struct {
	t    *testing.T
	path string
	clk  *clock.Fake
	emu  *ecsemu.Emulator
	srv  *httptest.Server
	c    *client
	mod  func(*ecsemu.Config)
}

func newRestartable(t *testing.T, mod func(*ecsemu.Config)) *restartable {
	r := &restartable{t: t, path: filepath.Join(t.TempDir(), "state.json"), clk: fakeAt(), mod: mod}
	r.start()
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	cfg := ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: r.clk, Seed: 7, StateFile: r.path}
	if r.mod != nil {
		r.mod(&cfg)
	}
	emu, err := ecsemu.New(cfg)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.emu, r.srv = emu, httptest.NewServer(emu)
	r.c = newClient(r.t, r.srv.URL, r.clk)
	r.t.Cleanup(r.stop)
}

func (r *restartable) stop() {
	if r.srv != nil {
		r.emu.Close()
		r.srv.Close()
		r.srv = nil
	}
}

func (r *restartable) restart() {
	r.stop()
	r.start()
}

const demoSrc = "m-bp1g7004ksh0oeuco4r2" // demo Ubuntu, 40 GiB, cn-hangzhou

func TestStateFileKeepsCopiesTokensAndSessionsAcrossRestarts(t *testing.T) {
	r := newRestartable(t, func(c *ecsemu.Config) { c.TimeScale = 10; c.CopySlotsPerRegion = 1 })
	first := r.c.copyImage("cn-hangzhou", demoSrc, "cn-beijing", "ClientToken", "tok-1", "Tag.1.Key", "job", "Tag.1.Value", "j1")
	second := r.c.copyImage("cn-hangzhou", demoSrc, "cn-beijing", "DestinationImageName", "second-copy")
	_, m := r.c.stsCall("AssumeRole", nil, "RoleArn", testRole, "RoleSessionName", "s1")
	k := keyOf(t, m)
	r.clk.Step(30 * time.Second)
	before := map[string]any{"first": r.c.describe("cn-beijing", first), "second": r.c.describe("cn-beijing", second)}
	if r.c.statusOf("cn-beijing", first) != "Creating" || r.c.statusOf("cn-beijing", second) != "Waiting" {
		t.Fatalf("before the restart: %s %s, want Creating Waiting", r.c.statusOf("cn-beijing", first), r.c.statusOf("cn-beijing", second))
	}

	r.restart()
	after := map[string]any{"first": r.c.describe("cn-beijing", first), "second": r.c.describe("cn-beijing", second)}
	for _, m := range []map[string]any{before, after} {
		for _, v := range m {
			delete(v.(map[string]any), "RequestId")
		}
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("copies changed across the restart:\nbefore %v\nafter  %v", before, after)
	}
	// The ClientToken still names the first copy: a retry makes no new one.
	if again := r.c.copyImage("cn-hangzhou", demoSrc, "cn-beijing", "ClientToken", "tok-1", "Tag.1.Key", "job", "Tag.1.Value", "j1"); again != first {
		t.Fatalf("retry with the same ClientToken after a restart made %s, want %s", again, first)
	}
	// The session still signs ECS calls.
	if s, body := r.c.ecsWith(k, "DescribeRegions"); s != http.StatusOK {
		t.Fatalf("STS session after a restart: %d %v", s, body)
	}
	// The queue kept its order: the first copy finishes, then the second.
	r.clk.Step(2 * time.Hour)
	if r.c.statusOf("cn-beijing", first) != "Available" || r.c.statusOf("cn-beijing", second) != "Available" {
		t.Fatalf("after two hours: %s %s", r.c.statusOf("cn-beijing", first), r.c.statusOf("cn-beijing", second))
	}
	// A delete survives a restart too; a new copy never reuses an id.
	r.c.ok("DeleteImage", "RegionId", "cn-beijing", "ImageId", second)
	r.restart()
	if got := r.c.statusOf("cn-beijing", second); got != "" {
		t.Fatalf("deleted copy is back after a restart: %s", got)
	}
	third := r.c.copyImage("cn-hangzhou", demoSrc, "cn-beijing", "DestinationImageName", "third-copy")
	if third == first || third == second {
		t.Fatalf("id %s reused after a restart", third)
	}
}

func TestStateFileIsCreatedAtStartAndRefusedWhenBad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	cfg := func() ecsemu.Config {
		return ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: fakeAt(), StateFile: path}
	}
	emu, err := ecsemu.New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	emu.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file not written at start: %v", err)
	}
	var sf map[string]any
	if err := json.Unmarshal(good, &sf); err != nil || len(sf["images"].([]any)) != len(ecsemu.DemoImages()) {
		t.Fatalf("initial state: %v, %d images", err, len(sf["images"].([]any)))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"garbage", "not json", "not a state file"},
		{"unknown field", `{"version":1,"surprise":true}`, "unknown field"},
		{"other version", `{"version":99}`, "version 99"},
		{"two objects", `{"version":1}{}`, "data after"},
		{"bad region", strings.Replace(string(good), `"region": "cn-hangzhou"`, `"region": "mars-1"`, 1), "unknown region"},
		{"bad status", strings.Replace(string(good), `"status": "Available"`, `"status": "Shiny"`, 1), "Shiny"},
		{"bad copy count", `{"version":1,"copiesOf":{"m-a>cn-beijing":-1}}`, `copiesOf "m-a>cn-beijing": -1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ecsemu.New(cfg())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err %v, want one naming %s and %q", err, path, tc.want)
			}
			// Refusing changes nothing.
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Fatal("a refused state file was rewritten")
			}
		})
	}
	if _, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"a": "b"}, StateFile: filepath.Join(dir, "no", "such", "dir", "s.json")}); err == nil {
		t.Fatal("a state file in a missing directory was accepted")
	}
}

// The attempt count a copy's fate is drawn from survives a restart: the
// copies made after one fail exactly as they would have without it.
func TestStateFileKeepsCopyFates(t *testing.T) {
	fates := func(restartAfter int) string {
		r := newRestartable(t, func(c *ecsemu.Config) { c.CreateFailedRate = 0.5; c.CopySlotsPerRegion = 20 })
		var ids []string
		for i := range 8 {
			if i == restartAfter {
				r.restart()
			}
			ids = append(ids, r.c.copyImage("cn-hangzhou", demoSrc, "cn-beijing"))
		}
		r.clk.Step(2 * time.Hour)
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(r.c.statusOf("cn-beijing", id)[:1])
		}
		return b.String()
	}
	if straight, restarted := fates(-1), fates(4); straight != restarted {
		t.Fatalf("fates of 8 copies: %s without a restart, %s with one after 4", straight, restarted)
	}
}
