package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/etcdcluster"
	"github.com/replicatord/replicatord/internal/policy"
)

// etcdBinary finds etcd's server as e2e does (etcdcluster.BinaryFor).
func etcdBinary(t *testing.T) string {
	t.Helper()
	return etcdcluster.BinaryFor(t, filepath.Join("..", ".."))
}

func TestEtcdFlags(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable() // an executable file, to pass the binary check
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "etcd.txt")
	if err := os.WriteFile(plain, []byte("not a program"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no", "etcd")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--etcd", exe, "--etcd-members", "0"}, "--etcd-members 0: want 1 to 9"},
		{[]string{"--etcd", exe, "--etcd-members", "-2"}, "--etcd-members -2: want 1 to 9"},
		{[]string{"--etcd", exe, "--etcd-members", "10"}, "--etcd-members 10: want 1 to 9"},
		{[]string{"--etcd", exe, "--replicas", "3"}, "--replicas 3: want 1 or 2"},
		{[]string{"--etcd", exe, "--replicas", "0"}, "--replicas 0: want 1 or 2"},
		{[]string{"--etcd", missing}, "--etcd " + missing + ": no such file or directory (make tools builds tools/bin/etcd)"},
		{[]string{"--etcd", dir}, "--etcd " + dir + ": not a file"},
		{[]string{"--etcd", plain}, "--etcd " + plain + ": not executable"},
		{[]string{"--etcd", ""}, "--etcd: empty path"},
		{[]string{"--etcd-members", "3"}, "add --etcd PATH"},
		{[]string{"--replicas", "2"}, "add --etcd PATH"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, errOut.String(), c.want)
		}
		if out.Len() > 0 {
			t.Errorf("%v: a refused flag printed %q", c.args, out.String())
		}
	}
	o, err := parseFlags([]string{"--etcd", exe}, &bytes.Buffer{})
	if err != nil || o.etcd != exe || o.etcdMembers != 3 || o.replicas != 1 {
		t.Fatalf("--etcd alone: %+v, %v; want 3 members, 1 replica", o, err)
	}
}

// TestWriteConfigEtcd: the config written for a run on etcd is one the
// daemon's own parser reads as store.backend etcd over every member's
// endpoint, insecure (loopback), with the same scheduler settings as the
// bbolt run's; without endpoints the store stays bbolt.
func TestWriteConfigEtcd(t *testing.T) {
	c := daemonConfig{Slots: 5, APIRate: 13, PollMin: time.Second, PollMax: time.Minute, LookaheadTime: 2 * time.Minute,
		DetectionLag: 3 * time.Minute, Lookahead: -1}
	eps := []string{"http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"}
	var files []*policy.File
	for i, e := range [][]string{nil, eps} {
		dir := filepath.Join(t.TempDir(), "run")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.Etcd = e
		path, err := writeConfig(dir, "http://127.0.0.1:1", c)
		if err != nil {
			t.Fatal(err)
		}
		f, err := policy.Load(path)
		if err != nil {
			b, _ := os.ReadFile(path)
			t.Fatalf("config %d does not load: %v\n%s", i, err, b)
		}
		files = append(files, f)
	}
	bbolt, etcd := files[0], files[1]
	if bbolt.Store.Backend != policy.BackendBbolt {
		t.Errorf("without endpoints: backend %q, want bbolt", bbolt.Store.Backend)
	}
	if etcd.Store.Backend != policy.BackendEtcd || !slices.Equal(etcd.Store.Etcd.Endpoints, eps) || !etcd.Store.Etcd.Insecure {
		t.Errorf("with endpoints: store %+v, want etcd over %v, insecure", etcd.Store, eps)
	}
	if !reflect.DeepEqual(etcd.Scheduler, bbolt.Scheduler) {
		t.Errorf("the scheduler settings differ:\netcd  %+v\nbbolt %+v", etcd.Scheduler, bbolt.Scheduler)
	}
	if etcd.Scheduler.CopySlotsPerRegion != 5 || etcd.Scheduler.PollMax != time.Minute {
		t.Errorf("scheduler %+v: not the settings written", etcd.Scheduler)
	}
}

// TestEtcdClusterExits: a binary that is not etcd (it exits at once) fails
// the start with an error naming the binary, and leaves nothing running.
func TestEtcdClusterExits(t *testing.T) {
	const bin = "/bin/false"
	if _, err := os.Stat(bin); err != nil {
		t.Skip(bin, " not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := startEtcdCluster(ctx, bin, 3, filepath.Join(t.TempDir(), "etcd"))
	if err == nil {
		c.Stop()
		t.Fatal("a cluster of /bin/false started")
	}
	if !strings.Contains(err.Error(), "--etcd "+bin) || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("error %q does not say that %s exited", err, bin)
	}
}

// TestTinyFleetEtcd runs the benchmark with --etcd on a tiny fleet: a
// 3-member cluster of real etcd processes, replicatord on it (a leader and
// a follower, --replicas 2) and on bbolt.
// Every copy succeeds exactly once in each, and the etcd row sits in the
// table next to bbolt's with its difference. It asserts no timing.
//
// Two regions: one Copy's jobs share a revision on etcd, which the
// scheduler's change feed once took for an event it had passed, leaving
// every job but the first of each Copy QUEUED (the run timed out).
func TestTinyFleetEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs replicatord and etcd")
	}
	bin := etcdBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--images", "3", "--regions", "2", "--wall-target", "1s", "--timeout", "90s",
		"--etcd", bin, "--etcd-members", "3", "--replicas", "2", "--markdown", "-v"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, errOut.String(), out.String())
	}
	s := out.String()
	for _, want := range []string{
		"run 1: makespan",
		"etcd run 1: makespan",
		"| replicatord |",
		"| replicatord on etcd (3 members, 2 replicas) |",
		" vs bbolt) |",
		"replicatord on etcd (3 members, 2 replicas): a fresh cluster of real etcd processes",
		"issue 14's target of 0.01",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// 6 fleet copies and the urgent one, all succeeded, on bbolt and etcd.
	if n := strings.Count(s, "7/7 succeeded, 0 failed attempts, 0 failed; urgent copy COPYING after "); n != 2 {
		t.Errorf("want every copy succeeded in the bbolt and the etcd run, found %d such runs:\n%s", n, s)
	}
	// Each exactly once: accepted CopyImage calls of the two daemon runs
	// and the script's.
	if n := strings.Count(s, "CopyImage:map[200:7]"); n != 3 {
		t.Errorf("want exactly 7 accepted CopyImage calls in each of 3 runs, found %d:\n%s", n, s)
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "| replicatord on etcd") && strings.Count(l, " min") < 3 {
			t.Errorf("etcd row without detection lag and urgent latency: %s", l)
		}
	}
}

// The etcd row is summarised like bbolt's and shows the difference of the
// median ratios; the note under the table holds it against issue 14's 0.01.
func TestEtcdRowDifference(t *testing.T) {
	h := time.Hour
	runs := func(ms ...time.Duration) []daemonRun {
		var rs []daemonRun
		for _, m := range ms {
			rs = append(rs, daemonRun{Makespan: m, Drive: &driveResult{Succeeded: 10}, Calls: calls{"CopyImage": {"200": 10}}})
		}
		return rs
	}
	lb := 10 * h
	bbolt := runs(10*h+6*time.Minute, 10*h+12*time.Minute, 10*h+18*time.Minute) // 1.010, 1.020, 1.030
	etcd := runs(10*h+27*time.Minute, 10*h+15*time.Minute, 10*h+21*time.Minute) // 1.045, 1.025, 1.035
	o := &options{etcdMembers: 3, replicas: 1, runs: 3}
	r := etcdRow(etcdName(o), etcd, bbolt, lb)
	if r.name != "replicatord on etcd (3 members)" || r.ratio != "1.035 (1.025–1.045) (+0.015 vs bbolt)" {
		t.Errorf("etcd row %q, ratio %q", r.name, r.ratio)
	}
	var out bytes.Buffer
	printEtcdNote(&out, o, etcd, bbolt, lb)
	if !strings.Contains(out.String(), "1.035 vs 1.020 on bbolt (medians of 3 runs): +0.015, NOT within issue 14's target of 0.01") {
		t.Errorf("note: %s", out.String())
	}
	out.Reset()
	printEtcdNote(&out, &options{etcdMembers: 1, replicas: 2, runs: 3}, runs(10*h+12*time.Minute+30*time.Second), bbolt, lb)
	if s := out.String(); !strings.Contains(s, "replicatord on etcd (1 member, 2 replicas)") || !strings.Contains(s, "+0.001, within issue 14's target") {
		t.Errorf("note: %s", s)
	}
}
