package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

func etcdClient(t testing.TB, endpoint string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// replica is one replicatord of an HA test.
type replica struct {
	id, socket string
	p          *proc
}

func (e *env) startReplica(id string) *replica {
	e.t.Helper()
	dir := filepath.Join(e.dir, id)
	r := &replica{id: id, socket: filepath.Join(dir, "replicatord.sock")}
	r.p = start(e.t, "replicatord", append(credsEnv(), "REPLICATORD_MEMBER_ID="+id), "--config", e.config, "--data-dir", dir)
	r.p.waitLine("replicatord ready", 30*time.Second)
	return r
}

// on runs replctl against one replica.
func (e *env) on(r *replica, args ...string) (string, int) {
	e.t.Helper()
	return e.ctlAt("unix://"+r.socket, nil, args...)
}

type haStatus struct {
	Leader  string                   `json:"leader"`
	Store   struct{ Backend string } `json:"store"`
	Members []struct {
		ID         string `json:"id"`
		Role       string `json:"role"`
		ConfigHash string `json:"configHash"`
	} `json:"members"`
}

func (e *env) statusAt(r *replica) haStatus {
	e.t.Helper()
	out, code := e.on(r, "status", "-o", "json")
	if code != 0 {
		e.t.Fatalf("status via %s: exit %d: %s", r.id, code, out)
	}
	var st haStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status via %s: %v: %s", r.id, err, out)
	}
	return st
}

// waitLeader waits until r reports leader as the leader.
func (e *env) waitLeader(r *replica, leader string, timeout time.Duration) haStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.statusAt(r)
		if st.Leader == leader {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s reports leader %q after %s, want %q", r.id, st.Leader, timeout, leader)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHAFailover: two replicas on one etcd. Copies are submitted through
// the follower and run on the leader. The leader is paused past its lease
// (SIGSTOP): the follower takes over, and the old leader, continued, exits
// 1 at once saying its session ended. It is started again (as its
// supervisor would) and the new leader is SIGKILLed mid-copy: the
// restarted one takes over. Every job ends SUCCEEDED with exactly one copy
// in ECS, and status lists the members and the leader all along.
func TestHAFailover(t *testing.T) {
	etcd := startEtcd(t)
	e := newEnv(t)
	e.writeConfig(fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%q]\n    insecure: true\n    lease_ttl: 2s\n", etcd))

	r1 := e.startReplica("r1")
	r1.p.waitLine("leading", 30*time.Second)
	r2 := e.startReplica("r2")
	st := e.waitLeader(r2, "r1", 30*time.Second)
	if st.Store.Backend != "etcd" || len(st.Members) != 2 || st.Members[0].ID != "r1" || st.Members[0].Role != "leader" ||
		st.Members[1].ID != "r2" || st.Members[1].Role != "follower" || st.Members[0].ConfigHash == "" || st.Members[0].ConfigHash != st.Members[1].ConfigHash {
		t.Fatalf("status via the follower = %+v", st)
	}
	if out, _ := e.on(r2, "status"); strings.Contains(out, "WARNING") || !strings.Contains(out, "leader   r1") {
		t.Errorf("status table via the follower:\n%s", out)
	}

	// Copies through the follower: the leader runs them.
	copies := []struct{ img, region string }{{imgWindows, "cn-beijing"}, {imgUbuntu, "cn-qingdao"}, {imgAlinux, "cn-shanghai"}}
	var ids []string
	for _, c := range copies {
		out, code := e.on(r2, "copy", c.img, "--from", source, "--to", c.region, "--detach", "-o", "json")
		if code != 0 {
			t.Fatalf("copy through the follower: exit %d: %s", code, out)
		}
		for id := range jobsIn(t, out) {
			ids = append(ids, id)
		}
	}
	if len(ids) != len(copies) {
		t.Fatalf("jobs %v, want %d", ids, len(copies))
	}
	e.socket = r2.socket // waitState watches through the follower
	e.waitState(ids[0], "JOB_STATE_COPYING", 60*time.Second)

	// The leader pauses past its lease: r2 takes over; r1, continued,
	// exits 1 at once.
	if err := r1.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	r2.p.waitLine("leading", 30*time.Second)
	if err := r1.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := r1.p.wait(30 * time.Second); code != 1 {
		t.Fatalf("the paused leader exited %d after its lease ran out, want 1", code)
	}
	if !strings.Contains(r1.p.output(), "the etcd session (lease) ended") {
		t.Errorf("the paused leader did not say why it exited:\n%s", r1.p.output())
	}

	// r1 again, as a follower; then r2 dies mid-copy and r1 takes over.
	r1 = e.startReplica("r1")
	e.waitLeader(r1, "r2", 30*time.Second)
	r2.p.kill9()
	e.socket = r1.socket
	r1.p.waitLine("leading", 30*time.Second)
	for _, id := range ids {
		e.waitState(id, "JOB_STATE_SUCCEEDED", 180*time.Second)
	}
	for _, c := range copies {
		if got := e.copiesIn(c.region, c.img); len(got) != 1 {
			t.Errorf("%s holds %d copies of %s, want exactly 1: %v", c.region, len(got), c.img, got)
		}
	}
	if st := e.statusAt(r1); st.Leader != "r1" || len(st.Members) != 1 {
		t.Errorf("status after the failovers = %+v, want r1 alone, leading", st)
	}
	// SIGTERM: the leader resigns on its way out.
	if code := r1.p.stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
	if !strings.Contains(r1.p.output(), "resigned leadership") {
		t.Errorf("the leader did not resign on SIGTERM:\n%s", r1.p.output())
	}
}

// TestEtcdStartFailures: an etcd that does not answer is exit 1 (the
// supervisor retries) naming the endpoint, after the dial timeout and
// with nothing listening; an unreadable TLS file is a config error, exit 2;
// the password is never printed.
func TestEtcdStartFailures(t *testing.T) {
	e := newEnv(t)
	dead := "http://" + freePort(t)
	e.writeConfig(fmt.Sprintf("store:\n  backend: etcd\n  etcd: {endpoints: [%q], insecure: true, dial_timeout: 1s}\n", dead))
	const password = "etcd-password-not-for-logs-91c2"
	env := append(credsEnv(), "REPLICATORD_ETCD_USERNAME=replicatord", "REPLICATORD_ETCD_PASSWORD="+password)
	p := start(t, "replicatord", env, "--config", e.config, "--data-dir", filepath.Join(e.dir, "a"))
	if code := p.wait(60 * time.Second); code != 1 {
		t.Fatalf("etcd unreachable: exit %d, want 1:\n%s", code, p.output())
	}
	if out := p.output(); !strings.Contains(out, strings.TrimPrefix(dead, "http://")) || strings.Contains(out, "replicatord ready") {
		t.Errorf("etcd unreachable: the error does not name the endpoint, or the daemon served:\n%s", out)
	}
	outputs := []string{p.output()}

	e.writeConfig("store:\n  backend: etcd\n  etcd: {endpoints: [\"etcd.invalid:2379\"], tls: {ca_file: missing-ca.pem}}\n")
	p = start(t, "replicatord", env, "--config", e.config, "--data-dir", filepath.Join(e.dir, "b"))
	if code := p.wait(60 * time.Second); code != 2 {
		t.Fatalf("missing CA file: exit %d, want 2:\n%s", code, p.output())
	}
	if out := p.output(); !strings.Contains(out, "store.etcd.tls.ca_file") || !strings.Contains(out, "missing-ca.pem") {
		t.Errorf("missing CA file: the error does not name the key and the file:\n%s", out)
	}
	for _, out := range append(outputs, p.output()) {
		if strings.Contains(out, password) {
			t.Errorf("the etcd password is printed:\n%s", out)
		}
	}
}

// TestHAOverTLSWithAuth: the secure default against a real etcd: TLS with
// the configured CA and a client certificate, and etcd's auth with the
// username and password from the environment. The replica leads and
// serves; with a wrong password it exits 1 and prints no password.
func TestHAOverTLSWithAuth(t *testing.T) {
	ca := transporttest.NewCA(t)
	srv, client := ca.Issue(t), ca.Issue(t, "replicatord-client")
	rootCert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{rootCert}, MinVersion: tls.VersionTLS12}
	endpoint := startEtcdWith(t, tc, "--cert-file", srv.CertFile, "--key-file", srv.KeyFile,
		"--trusted-ca-file", ca.CertFile, "--client-cert-auth")

	// etcd's auth: root, and a user that may use the store's prefix only.
	const password = "etcd-password-not-for-logs-5d1e"
	cli := etcdClient(t, endpoint, tc)
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-password"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "replicatord"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "replicatord", "/replicatord/", clientv3.GetPrefixRangeEnd("/replicatord/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "replicatord", password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "replicatord", "replicatord"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("etcd auth setup: %v", err)
		}
	}

	e := newEnv(t)
	e.writeConfig(fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%q]\n    lease_ttl: 2s\n    tls: {ca_file: %q, cert_file: %q, key_file: %q}\n",
		strings.TrimPrefix(endpoint, "https://"), ca.CertFile, client.CertFile, client.KeyFile))
	env := append(credsEnv(), "REPLICATORD_MEMBER_ID=r1", "REPLICATORD_ETCD_USERNAME=replicatord", "REPLICATORD_ETCD_PASSWORD="+password)
	r := &replica{id: "r1", socket: filepath.Join(e.dir, "r1", "replicatord.sock")}
	r.p = start(t, "replicatord", env, "--config", e.config, "--data-dir", filepath.Join(e.dir, "r1"))
	r.p.waitLine("replicatord ready", 30*time.Second)
	r.p.waitLine("leading", 30*time.Second)
	if st := e.waitLeader(r, "r1", 30*time.Second); st.Store.Backend != "etcd" || len(st.Members) != 1 {
		t.Fatalf("status = %+v", st)
	}
	out, code := e.on(r, "copy", imgAlinux, "--from", source, "--to", "cn-shanghai", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy over TLS and auth: exit %d: %s", code, out)
	}
	if r.p.stop() != 0 || strings.Contains(r.p.output(), password) {
		t.Fatalf("stop, or the password is printed:\n%s", r.p.output())
	}

	bad := start(t, "replicatord", append(env[:len(env)-1], "REPLICATORD_ETCD_PASSWORD=wrong-"+password), "--config", e.config, "--data-dir", filepath.Join(e.dir, "r2"))
	if code := bad.wait(60 * time.Second); code != 1 {
		t.Fatalf("wrong etcd password: exit %d, want 1:\n%s", code, bad.output())
	}
	if out := bad.output(); strings.Contains(out, password) || !strings.Contains(strings.ToLower(out), "auth") {
		t.Errorf("wrong etcd password: the password is printed, or the error does not say auth failed:\n%s", out)
	}
}

// TestStatusBboltOneMember: with the bbolt store the daemon is the one
// member and the leader, named hostname-pid, with its policy file's hash.
func TestStatusBboltOneMember(t *testing.T) {
	e := newEnv(t)
	d := e.startDaemon()
	st := e.statusAt(&replica{id: "bbolt", socket: e.socket})
	host, _ := os.Hostname()
	want := fmt.Sprintf("%s-%d", host, d.cmd.Process.Pid)
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if st.Store.Backend != "bbolt" || st.Leader != want || len(st.Members) != 1 || st.Members[0].ID != want ||
		st.Members[0].Role != "leader" || st.Members[0].ConfigHash != hex.EncodeToString(sum[:]) {
		t.Fatalf("status = %+v, want %s alone, leading, with the file's sha256", st, want)
	}
}

// TestHACopyToSeveralRegions: one Copy to three regions on etcd makes
// three jobs in one transaction, so at one revision; the leader's
// scheduler carries out all three. Its change feed once took the second
// and third for an event it had passed, and left them QUEUED.
func TestHACopyToSeveralRegions(t *testing.T) {
	e, r := startLeader(t)
	out, code := e.on(r, "copy", imgAlinux, "--from", source, "--to", "cn-beijing,cn-shanghai,cn-qingdao", "--detach", "-o", "json")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, out)
	}
	jobs := jobsIn(t, out)
	if len(jobs) != 3 {
		t.Fatalf("jobs %v, want 3", jobs)
	}
	e.socket = r.socket
	for id := range jobs {
		e.waitState(id, "JOB_STATE_SUCCEEDED", 90*time.Second)
	}
}

// startLeader runs one replica, r1, on a one-member etcd (lease_ttl 2s)
// and waits until it leads.
func startLeader(t *testing.T) (*env, *replica) {
	t.Helper()
	etcd := startEtcd(t)
	e := newEnv(t)
	e.writeConfig(fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%q]\n    insecure: true\n    lease_ttl: 2s\n", etcd))
	r := e.startReplica("r1")
	r.p.waitLine("leading", 30*time.Second)
	return e, r
}
