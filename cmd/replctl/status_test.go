package main

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// statusServer is a daemon that is up but whose cloud is down.
type statusServer struct {
	fakeServer
	resp *replicatorv1.GetStatusResponse
}

func (s *statusServer) GetStatus(context.Context, *replicatorv1.GetStatusRequest) (*replicatorv1.GetStatusResponse, error) {
	return s.resp, nil
}

func serveWithHealth(t *testing.T, srv *statusServer) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	lis, err := net.Listen("unix", filepath.Join(dir, "d.sock"))
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	replicatorv1.RegisterReplicatorServiceServer(g, srv)
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, h)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return "unix://" + lis.Addr().String()
}

const cloudDown = "the cloud does not answer: DescribeRegions in cn-hangzhou: connection refused"

func downStatus() *replicatorv1.GetStatusResponse {
	return &replicatorv1.GetStatusResponse{
		Version: "v1.4.0",
		Status:  replicatorv1.ServingStatus_SERVING_STATUS_NOT_SERVING,
		Reason:  cloudDown,
		Cloud: &replicatorv1.CloudStatus{Provider: "aliyun", Network: "vpc", Endpoint: "https://ecs-vpc.cn-shanghai.aliyuncs.com",
			LastError: "DescribeRegions in cn-shanghai: connection refused", Credentials: "****0001 from default/env"},
		Store:     &replicatorv1.StoreStatus{Backend: "bbolt", Path: "/var/lib/replicatord/state.db", Revision: 12},
		StartTime: ts(-90 * time.Second),
	}
}

// TestCloudDownIsNotDaemonDown: when the daemon answers UNAVAILABLE because
// ECS is unreachable, replctl says so (with the daemon's reason) instead of
// asking whether the daemon runs; without a daemon it still asks.
func TestCloudDownIsNotDaemonDown(t *testing.T) {
	srv := &statusServer{resp: downStatus()}
	srv.copy = func(*replicatorv1.CopyRequest, grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		return status.Error(codes.Unavailable, "source_region: cannot check region cn-hangzhou yet: "+cloudDown+"; retrying: unavailable")
	}
	addr := serveWithHealth(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "cn-hangzhou", "--to", "cn-beijing")
	if res.code != 10+int(codes.Unavailable) {
		t.Errorf("exit %d, want %d", res.code, 10+int(codes.Unavailable))
	}
	if strings.Contains(res.stderr, "is the daemon running") || !strings.Contains(res.stderr, "replicatord is running but cannot serve this now") ||
		!strings.Contains(res.stderr, "connection refused") || !strings.Contains(res.stderr, "replctl status") {
		t.Errorf("stderr %q", res.stderr)
	}
	if strings.Contains(res.stderr+res.stdout, "sending the copy again") {
		t.Errorf("replctl retried a copy the daemon refused because the cloud is down:\n%s%s", res.stdout, res.stderr)
	}

	none := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	res = runReplctl(t, context.Background(), nil, "--address", none, "copy", "m-1", "--from", "cn-hangzhou", "--to", "cn-beijing")
	if !strings.Contains(res.stderr, "cannot reach replicatord") || !strings.Contains(res.stderr, "is the daemon running") {
		t.Errorf("without a daemon: stderr %q", res.stderr)
	}
}

func TestStatusCommand(t *testing.T) {
	srv := &statusServer{resp: downStatus()}
	addr := serveWithHealth(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "status")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := "daemon   replicatord v1.4.0 at " + addr + "\n" +
		"health   NOT_SERVING: " + cloudDown + "\n" +
		"started  2026-11-25T16:58:30Z (1m30s ago)\n" +
		"cloud    aliyun, vpc endpoints, region list from https://ecs-vpc.cn-shanghai.aliyuncs.com\n" +
		"         UNREACHABLE: DescribeRegions in cn-shanghai: connection refused\n" +
		"         credentials ****0001 from default/env\n" +
		"store    bbolt /var/lib/replicatord/state.db (revision 12)\n"
	if res.stdout != want {
		t.Errorf("status:\n%s\nwant:\n%s", res.stdout, want)
	}
	srv.resp = &replicatorv1.GetStatusResponse{Version: "v1.4.0", Status: replicatorv1.ServingStatus_SERVING_STATUS_SERVING,
		Cloud: &replicatorv1.CloudStatus{Provider: "aliyun", Network: "public", Endpoint: "https://ecs.cn-hangzhou.aliyuncs.com", Reachable: true, Regions: 28, LastReachedTime: ts(-3 * time.Second)},
		Store: &replicatorv1.StoreStatus{Backend: "bbolt", Path: "/d/state.db"}}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "status", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"status":"SERVING_STATUS_SERVING"`) || !strings.Contains(res.stdout, `"regions":28`) {
		t.Errorf("status -o json: exit %d %q", res.code, res.stdout)
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "status")
	if !strings.Contains(res.stdout, "health   SERVING\n") || !strings.Contains(res.stdout, "reachable (last answer 3s ago), 28 regions") {
		t.Errorf("serving status:\n%s", res.stdout)
	}
}

// TestStatusMembers: with the etcd store, status shows the leader and
// every member, and warns when they run different policy files; with one
// file, no warning.
func TestStatusMembers(t *testing.T) {
	hash := func(c byte) string { return strings.Repeat(string(c), 64) }
	resp := &replicatorv1.GetStatusResponse{Version: "v1.5.0", Status: replicatorv1.ServingStatus_SERVING_STATUS_SERVING,
		Cloud:  &replicatorv1.CloudStatus{Provider: "aliyun", Network: "public", Endpoint: "https://ecs.cn-hangzhou.aliyuncs.com", Reachable: true, Regions: 28, LastReachedTime: ts(-3 * time.Second)},
		Store:  &replicatorv1.StoreStatus{Backend: "etcd", Path: "https://etcd-0:2379 /replicatord/", Revision: 40},
		Leader: "r-0",
		Members: []*replicatorv1.ReplicaMember{
			{Id: "r-0", Address: "0.0.0.0:7443", Role: "leader", Version: "v1.5.0", ConfigHash: hash('a'), StartTime: ts(-90 * time.Second)},
			{Id: "r-1", Address: "0.0.0.0:7443", Role: "follower", Version: "v1.5.0", ConfigHash: hash('b'), StartTime: ts(-30 * time.Second)},
		}}
	srv := &statusServer{resp: resp}
	addr := serveWithHealth(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "status")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := "store    etcd https://etcd-0:2379 /replicatord/ (revision 40)\n" +
		"leader   r-0\n" +
		"member   r-0 leader at 0.0.0.0:7443, v1.5.0, config aaaaaaaaaaaa, up 1m30s\n" +
		"member   r-1 follower at 0.0.0.0:7443, v1.5.0, config bbbbbbbbbbbb, up 30s\n" +
		"WARNING  the members run 2 different policy files (config hashes differ): the policies that run depend on which one leads; deploy one file to every replica\n"
	if !strings.HasSuffix(res.stdout, want) {
		t.Errorf("status:\n%s\nwant it to end with:\n%s", res.stdout, want)
	}
	resp.Members[1].ConfigHash = hash('a')
	resp.Leader = ""
	res = runReplctl(t, context.Background(), nil, "--address", addr, "status")
	if strings.Contains(res.stdout, "WARNING") || !strings.Contains(res.stdout, "leader   NONE (an election is under way)\n") {
		t.Errorf("one policy file, no leader:\n%s", res.stdout)
	}
}

func TestDefaultAddress(t *testing.T) {
	exists := func(string) (os.FileInfo, error) { return nil, nil }
	missing := func(string) (os.FileInfo, error) { return nil, fs.ErrNotExist }
	if got := defaultAddress(exists); got != "unix://.replicatord/replicatord.sock" {
		t.Errorf("with a local socket: %s", got)
	}
	if got := defaultAddress(missing); got != "unix:///run/replicatord/replicatord.sock" {
		t.Errorf("without: %s", got)
	}
	// REPLCTL_ADDRESS wins over both; the flag over everything.
	res := runReplctl(t, context.Background(), map[string]string{"REPLCTL_ADDRESS": "unix:///nonexistent/env.sock"}, "jobs")
	if !strings.Contains(res.stderr, "env.sock") {
		t.Errorf("REPLCTL_ADDRESS not used: %q", res.stderr)
	}
	res = runReplctl(t, context.Background(), nil, "jobs")
	if !strings.Contains(res.stderr, "/run/replicatord/replicatord.sock") && !strings.Contains(res.stderr, ".replicatord/replicatord.sock") {
		t.Errorf("no default address in %q", res.stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	res := runReplctl(t, context.Background(), nil, "--version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "replctl "+version()+" (go") {
		t.Errorf("--version: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
}
