package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// testNow is the fixed "now" of in-process runs and golden files.
var testNow = time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(d)) }

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers,
// which can wait until the output contains a string.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until cond holds for the output, failing after a deadline.
func (b *syncBuffer) waitFor(t *testing.T, what string, cond func(string) bool) {
	t.Helper()
	b.waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin is waitFor with its own deadline.
func (b *syncBuffer) waitWithin(t *testing.T, d time.Duration, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond(b.String()) {
		select {
		case <-b.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; output so far:\n%s", what, b.String())
		}
	}
}

func (b *syncBuffer) waitForText(t *testing.T, s string) {
	t.Helper()
	b.waitFor(t, fmt.Sprintf("%q", s), func(out string) bool { return strings.Contains(out, s) })
}

// fakeServer is a scripted ReplicatorService: each test sets the handlers
// it needs. It runs as a real gRPC server on a real unix socket.
type fakeServer struct {
	replicatorv1.UnimplementedReplicatorServiceServer

	copy   func(*replicatorv1.CopyRequest, grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error
	watch  func(*replicatorv1.WatchRequest, grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error
	getJob func(*replicatorv1.GetJobRequest) (*replicatorv1.GetJobResponse, error)
	list   func(*replicatorv1.ListJobsRequest) (*replicatorv1.ListJobsResponse, error)
	cancel func(*replicatorv1.CancelRequest) (*replicatorv1.CancelResponse, error)
	retry  func(*replicatorv1.RetryRequest) (*replicatorv1.RetryResponse, error)
	pols   *replicatorv1.ListPoliciesResponse
	plan   *replicatorv1.PlanPoliciesResponse
	reload *replicatorv1.ReloadPoliciesResponse

	mu   sync.Mutex
	auth []string // authorization metadata of every call
}

func (s *fakeServer) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, strings.Join(md.Get("authorization"), ","))
}

func (s *fakeServer) Copy(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
	s.record(st.Context())
	return s.copy(r, st)
}
func (s *fakeServer) Watch(r *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
	s.record(st.Context())
	return s.watch(r, st)
}
func (s *fakeServer) GetJob(ctx context.Context, r *replicatorv1.GetJobRequest) (*replicatorv1.GetJobResponse, error) {
	s.record(ctx)
	return s.getJob(r)
}
func (s *fakeServer) ListJobs(ctx context.Context, r *replicatorv1.ListJobsRequest) (*replicatorv1.ListJobsResponse, error) {
	s.record(ctx)
	return s.list(r)
}
func (s *fakeServer) Cancel(ctx context.Context, r *replicatorv1.CancelRequest) (*replicatorv1.CancelResponse, error) {
	s.record(ctx)
	return s.cancel(r)
}
func (s *fakeServer) Retry(ctx context.Context, r *replicatorv1.RetryRequest) (*replicatorv1.RetryResponse, error) {
	s.record(ctx)
	return s.retry(r)
}
func (s *fakeServer) ListPolicies(ctx context.Context, _ *replicatorv1.ListPoliciesRequest) (*replicatorv1.ListPoliciesResponse, error) {
	s.record(ctx)
	return s.pols, nil
}
func (s *fakeServer) PlanPolicies(ctx context.Context, _ *replicatorv1.PlanPoliciesRequest) (*replicatorv1.PlanPoliciesResponse, error) {
	s.record(ctx)
	return s.plan, nil
}
func (s *fakeServer) ReloadPolicies(ctx context.Context, _ *replicatorv1.ReloadPoliciesRequest) (*replicatorv1.ReloadPoliciesResponse, error) {
	s.record(ctx)
	return s.reload, nil
}

// serve runs srv on a fresh unix socket and returns its --address.
func serve(t *testing.T, srv *fakeServer, opts ...grpc.ServerOption) string {
	t.Helper()
	// A short directory: t.TempDir() can exceed the unix socket path limit.
	dir, err := os.MkdirTemp("", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return "unix://" + startGRPC(t, lis, srv, opts...)
}

func startGRPC(t *testing.T, lis net.Listener, srv *fakeServer, opts ...grpc.ServerOption) string {
	s := grpc.NewServer(opts...)
	replicatorv1.RegisterReplicatorServiceServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

// result is one in-process replctl run.
type result struct {
	code           int
	stdout, stderr string
}

// runReplctl runs replctl in-process, not on a terminal, with env vars envs.
func runReplctl(t *testing.T, ctx context.Context, envs map[string]string, args ...string) result {
	t.Helper()
	out, errb := newSyncBuffer(), newSyncBuffer()
	code := run(ctx, args, testEnv(out, errb, envs))
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func testEnv(out, errb *syncBuffer, envs map[string]string) *env {
	return &env{
		stdout: out,
		stderr: errb,
		getenv: func(k string) string { return envs[k] },
		now:    func() time.Time { return testNow },
		term:   func() termInfo { return termInfo{} },
	}
}

// sampleJob returns a job with every commonly shown field set.
func sampleJob(id, region string, state replicatorv1.JobState, pct int32) *replicatorv1.Job {
	j := &replicatorv1.Job{
		Id:                   id,
		SourceRegion:         "cn-hangzhou",
		SourceImageId:        "m-bp1src0000000000001",
		SourceImageName:      "ubuntu-22.04-base",
		DestinationRegion:    region,
		DestinationImageName: "ubuntu-22.04-base-copy",
		State:                state,
		ProgressPercent:      pct,
		SizeGib:              40,
		Attempts:             1,
		CreateTime:           ts(-25 * time.Minute),
		UpdateTime:           ts(-10 * time.Second),
		Revision:             42,
	}
	switch state {
	case replicatorv1.JobState_JOB_STATE_WAITING:
		j.CloudStatus = "Waiting"
		j.DestinationImageId = "m-dst" + region
	case replicatorv1.JobState_JOB_STATE_COPYING:
		j.CloudStatus = "Creating"
		j.DestinationImageId = "m-dst" + region
		j.Remaining = durationpb.New(7 * time.Minute)
	case replicatorv1.JobState_JOB_STATE_SUCCEEDED:
		j.CloudStatus = "Available"
		j.DestinationImageId = "m-dst" + region
		j.FinishTime = ts(-1 * time.Minute)
	case replicatorv1.JobState_JOB_STATE_FAILED:
		j.CloudStatus = "CreateFailed"
		j.Error = &replicatorv1.JobError{Code: "QuotaExceed.Image", Message: "The image quota in the destination region is exceeded.", RequestId: "6A3C2B1D-0000-4000-8000-000000000001"}
		j.FinishTime = ts(-2 * time.Minute)
	case replicatorv1.JobState_JOB_STATE_CANCELLED:
		j.FinishTime = ts(-3 * time.Minute)
	}
	return j
}
