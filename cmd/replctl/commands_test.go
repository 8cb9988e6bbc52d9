package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

func TestJobsTableAndPaging(t *testing.T) {
	jobs := sampleJobs()
	var mu sync.Mutex
	var reqs []*replicatorv1.ListJobsRequest
	srv := &fakeServer{list: func(r *replicatorv1.ListJobsRequest) (*replicatorv1.ListJobsResponse, error) {
		mu.Lock()
		reqs = append(reqs, proto.Clone(r).(*replicatorv1.ListJobsRequest))
		mu.Unlock()
		switch r.PageToken {
		case "":
			return &replicatorv1.ListJobsResponse{Jobs: jobs[:3], NextPageToken: "p2"}, nil
		case "p2":
			return &replicatorv1.ListJobsResponse{Jobs: jobs[3:]}, nil
		}
		return nil, status.Error(codes.InvalidArgument, "page_token: unknown token")
	}}
	addr := serve(t, srv)

	res := runReplctl(t, context.Background(), nil, "--address", addr, "jobs", "--state", "copying,failed", "--state", "QUEUED", "--policy", "nightly", "--limit", "3")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "more jobs: --page-token p2") {
		t.Errorf("stderr should point to the next page: %q", res.stderr)
	}
	if n := strings.Count(res.stdout, "\n"); n != 4 {
		t.Errorf("want header + 3 rows, got %d lines:\n%s", n, res.stdout)
	}
	want := []replicatorv1.JobState{stCopying, stFailed, stQueued}
	if got := reqs[0].GetStates(); fmt.Sprint(got) != fmt.Sprint(want) || reqs[0].GetPolicy() != "nightly" || reqs[0].GetPageSize() != 3 {
		t.Errorf("request = %v", reqs[0])
	}

	res = runReplctl(t, context.Background(), nil, "--address", addr, "jobs", "--all")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var b strings.Builder
	if err := writeJobsTable(&b, jobs, testNow); err != nil {
		t.Fatal(err)
	}
	if res.stdout != b.String() {
		t.Errorf("--all should print both pages as one table:\n%s", res.stdout)
	}

	res = runReplctl(t, context.Background(), nil, "--address", addr, "jobs", "--all", "-o", "json")
	if n := strings.Count(res.stdout, "\n"); n != len(jobs) || !strings.HasPrefix(res.stdout, `{"id":"j-0001"`) {
		t.Errorf("-o json: want one Job per line, got:\n%s", res.stdout)
	}
}

func TestGetOutputsAndErrors(t *testing.T) {
	j := sampleJob("j-0001", "cn-shanghai", stCopying, 45)
	srv := &fakeServer{getJob: func(r *replicatorv1.GetJobRequest) (*replicatorv1.GetJobResponse, error) {
		if r.JobId != j.Id {
			return nil, status.Errorf(codes.NotFound, "job %q not found", r.JobId)
		}
		return &replicatorv1.GetJobResponse{Job: j}, nil
	}}
	addr := serve(t, srv)

	res := runReplctl(t, context.Background(), nil, "--address", addr, "get", "j-0001")
	if res.code != 0 || !strings.Contains(res.stdout, "Cloud status:") || !strings.Contains(res.stdout, "Creating") {
		t.Errorf("get table: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "get", "j-0001", "-o", "yaml")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "---\nid: j-0001\n") {
		t.Errorf("get yaml: exit %d\n%s", res.code, res.stdout)
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "get", "j-nope")
	if res.code != 10+int(codes.NotFound) || res.stderr != "replctl: job \"j-nope\" not found\n" {
		t.Errorf("NotFound: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	res := runReplctl(t, context.Background(), nil, "--address", "unix://"+sock, "jobs")
	if res.code != 10+int(codes.Unavailable) {
		t.Errorf("exit %d, want %d (UNAVAILABLE)", res.code, 10+int(codes.Unavailable))
	}
	if !strings.HasPrefix(res.stderr, "replctl: cannot reach replicatord") || !strings.Contains(res.stderr, "REPLCTL_ADDRESS") {
		t.Errorf("stderr = %q", res.stderr)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := &fakeServer{getJob: func(*replicatorv1.GetJobRequest) (*replicatorv1.GetJobResponse, error) {
		<-release
		return nil, status.Error(codes.Internal, "too late")
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "--timeout", "50ms", "get", "j-1")
	if res.code != 10+int(codes.DeadlineExceeded) || !strings.Contains(res.stderr, "--timeout") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestTokenFromEnvOverUnixSocket(t *testing.T) {
	srv := &fakeServer{pols: samplePolicies()}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), map[string]string{"REPLCTL_ADDRESS": addr, "REPLCTL_TOKEN": "s3cret"}, "policies")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if len(srv.auth) != 1 || srv.auth[0] != "Bearer s3cret" {
		t.Errorf("server saw authorization %q", srv.auth)
	}
	var b strings.Builder
	_ = writePoliciesTable(&b, samplePolicies(), testNow)
	if res.stdout != b.String() {
		t.Errorf("policies output:\n%s", res.stdout)
	}
	// The flag wins over the environment.
	res = runReplctl(t, context.Background(), map[string]string{"REPLCTL_ADDRESS": "unix:///nonexistent.sock", "REPLCTL_TOKEN": "s3cret"}, "--address", addr, "--token", "other", "policies", "-o", "json")
	if res.code != 0 || srv.auth[1] != "Bearer other" || strings.Count(res.stdout, "\n") != 2 {
		t.Errorf("exit %d auth %q stdout:\n%s", res.code, srv.auth, res.stdout)
	}
}

func TestPlanAndReload(t *testing.T) {
	srv := &fakeServer{plan: samplePlan(), reload: &replicatorv1.ReloadPoliciesResponse{
		Errors: []*replicatorv1.ValidationError{
			{File: "policies.yaml", Line: 12, Column: 5, Policy: "nightly", Message: "destination_regions: unknown region \"cn-nowhere\""},
			{File: "policies.yaml", Line: 3, Message: "version: must be 1"},
		},
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "plan")
	var b strings.Builder
	_ = writePlanTable(&b, samplePlan())
	if res.code != 0 || res.stdout != b.String() {
		t.Errorf("plan: exit %d\n%s", res.code, res.stdout)
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "reload")
	want := "policies.yaml:12:5: policy \"nightly\": destination_regions: unknown region \"cn-nowhere\"\n" +
		"policies.yaml:3: version: must be 1\n" +
		"replctl: policy file rejected with 2 error(s); nothing changed\n"
	if res.code != exitFailure || res.stderr != want {
		t.Errorf("reload rejected: exit %d, stderr:\n%s", res.code, res.stderr)
	}

	srv.reload = &replicatorv1.ReloadPoliciesResponse{Applied: true, Added: []string{"weekly"}, Changed: []string{"nightly", "dr"}}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "reload")
	if res.code != 0 || res.stdout != "reloaded: added weekly; changed nightly, dr\n" {
		t.Errorf("reload applied: exit %d, %q", res.code, res.stdout)
	}
}

func TestCancelByFilterAndRetry(t *testing.T) {
	var gotList *replicatorv1.ListJobsRequest
	var gotCancel []string
	srv := &fakeServer{
		list: func(r *replicatorv1.ListJobsRequest) (*replicatorv1.ListJobsResponse, error) {
			gotList = proto.Clone(r).(*replicatorv1.ListJobsRequest)
			if r.DestinationRegion == "cn-nowhere" {
				return &replicatorv1.ListJobsResponse{}, nil
			}
			return &replicatorv1.ListJobsResponse{Jobs: []*replicatorv1.Job{sampleJob("j-0001", "cn-shanghai", stCopying, 45)}}, nil
		},
		cancel: func(r *replicatorv1.CancelRequest) (*replicatorv1.CancelResponse, error) {
			gotCancel = r.JobIds
			if r.JobIds[0] == "j-done" {
				return nil, status.Error(codes.FailedPrecondition, "job j-done is SUCCEEDED; only unfinished jobs can be cancelled")
			}
			return &replicatorv1.CancelResponse{Jobs: []*replicatorv1.Job{sampleJob("j-0001", "cn-shanghai", stCancelling, 45)}}, nil
		},
		retry: func(r *replicatorv1.RetryRequest) (*replicatorv1.RetryResponse, error) {
			return &replicatorv1.RetryResponse{Jobs: []*replicatorv1.Job{sampleJob(r.JobIds[0], "cn-shanghai", stQueued, 0)}}, nil
		},
	}
	addr := serve(t, srv)

	res := runReplctl(t, context.Background(), nil, "--address", addr, "cancel", "--image", "m-bp1src0000000000001", "--region", "cn-shanghai")
	if res.code != 0 || !strings.Contains(res.stdout, "CANCELLING") {
		t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if fmt.Sprint(gotList.GetStates()) != fmt.Sprint(activeStates) || gotList.GetSourceImageId() != "m-bp1src0000000000001" || gotList.GetDestinationRegion() != "cn-shanghai" {
		t.Errorf("list request = %v", gotList)
	}
	if fmt.Sprint(gotCancel) != "[j-0001]" {
		t.Errorf("cancelled %v", gotCancel)
	}

	gotCancel = nil
	res = runReplctl(t, context.Background(), nil, "--address", addr, "cancel", "--image", "m-x", "--region", "cn-nowhere")
	if res.code != 0 || gotCancel != nil || !strings.Contains(res.stderr, "nothing to cancel") {
		t.Errorf("no match: exit %d, cancel %v, stderr %q", res.code, gotCancel, res.stderr)
	}

	res = runReplctl(t, context.Background(), nil, "--address", addr, "cancel", "j-done")
	if res.code != 10+int(codes.FailedPrecondition) || !strings.Contains(res.stderr, "replctl: job j-done is SUCCEEDED") {
		t.Errorf("finished job: exit %d, stderr %q", res.code, res.stderr)
	}

	res = runReplctl(t, context.Background(), nil, "--address", addr, "retry", "j-0009", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"state":"JOB_STATE_QUEUED"`) {
		t.Errorf("retry: exit %d\n%s", res.code, res.stdout)
	}
}

// copyScript sends jobs through a Copy stream.
func copyScript(jobs ...*replicatorv1.Job) func(*replicatorv1.CopyRequest, grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
	return func(_ *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		for _, j := range jobs {
			if err := st.Send(&replicatorv1.CopyResponse{Job: j, Revision: j.Revision}); err != nil {
				return err
			}
		}
		return nil
	}
}

func withRev(j *replicatorv1.Job, rev int64) *replicatorv1.Job {
	j.Revision = rev
	return j
}

func TestCopyExitCodesAndOutputs(t *testing.T) {
	var got *replicatorv1.CopyRequest
	srv := &fakeServer{}
	addr := serve(t, srv)
	args := []string{"--address", addr, "copy", "m-bp1src0000000000001", "--from", "cn-hangzhou", "--to", "cn-shanghai,cn-beijing",
		"--name", "web", "--encrypted", "--kms-key", "k1", "--tag", "team=web", "--tag", "env=a=b"}
	for _, tc := range []struct {
		name   string
		final  replicatorv1.JobState
		code   int
		stderr string
	}{
		{"all succeeded", stSucceeded, 0, ""},
		{"one failed", stFailed, exitFailure, "replctl: 1 of 2 copies failed\n"},
		{"one cancelled", stCancelled, exitCancelled, "replctl: 1 of 2 copies were cancelled\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.copy = func(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
				got = r
				return copyScript(
					withRev(sampleJob("j-0001", "cn-shanghai", stQueued, 0), 1),
					withRev(sampleJob("j-0002", "cn-beijing", stQueued, 0), 2),
					withRev(sampleJob("j-0001", "cn-shanghai", stCopying, 50), 3),
					withRev(sampleJob("j-0001", "cn-shanghai", stSucceeded, 100), 4),
					withRev(sampleJob("j-0002", "cn-beijing", tc.final, 0), 5),
				)(r, st)
			}
			res := runReplctl(t, context.Background(), nil, args...)
			if res.code != tc.code || res.stderr != tc.stderr {
				t.Errorf("exit %d stderr %q, want %d %q", res.code, res.stderr, tc.code, tc.stderr)
			}
			if n := strings.Count(res.stdout, "\n"); n != 5 {
				t.Errorf("want 5 plain lines, got:\n%s", res.stdout)
			}
		})
	}
	want := &replicatorv1.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: "m-bp1src0000000000001",
		DestinationRegions: []string{"cn-shanghai", "cn-beijing"}, DestinationImageName: "web", Encrypted: true, KmsKeyId: "k1",
		Tags: map[string]string{"team": "web", "env": "a=b"}}
	// Every invocation sends a fresh random request id.
	if !strings.HasPrefix(got.GetRequestId(), "replctl-") || len(got.GetRequestId()) != 40 {
		t.Errorf("request id %q, want replctl- and 32 hex digits", got.GetRequestId())
	}
	got.RequestId = ""
	if !proto.Equal(got, want) {
		t.Errorf("request = %v, want %v", got, want)
	}

	// Golden: plain lines and JSON lines of the same stream.
	srv.copy = copyScript(
		withRev(sampleJob("j-0001", "cn-shanghai", stQueued, 0), 1),
		withRev(sampleJob("j-0001", "cn-shanghai", stCopying, 50), 3),
		withRev(sampleJob("j-0001", "cn-shanghai", stFailed, 0), 4),
	)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b")
	golden(t, "copy_plain", []byte(res.stdout))
	res = runReplctl(t, context.Background(), nil, "--address", addr, "-o", "json", "copy", "m-1", "--from", "a", "--to", "b")
	golden(t, "copy_json", []byte(res.stdout))
	if res.code != exitFailure {
		t.Errorf("-o json: exit %d, want %d", res.code, exitFailure)
	}
}

func TestCopyServerError(t *testing.T) {
	srv := &fakeServer{copy: func(*replicatorv1.CopyRequest, grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		return status.Error(codes.InvalidArgument, `source_region: unknown region "cn-nowhere"`)
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "cn-nowhere", "--to", "b")
	if res.code != 10+int(codes.InvalidArgument) || res.stderr != "replctl: source_region: unknown region \"cn-nowhere\"\n" {
		t.Errorf("exit %d stderr %q", res.code, res.stderr)
	}
}

// A Copy stream that breaks after the jobs exist is continued with Watch,
// from the last revision, for exactly those jobs; Copy is not sent again.
func TestCopyFallsBackToWatch(t *testing.T) {
	var copies int
	watchReq := make(chan *replicatorv1.WatchRequest, 1)
	srv := &fakeServer{
		copy: func(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
			copies++
			_ = copyScript(withRev(sampleJob("j-0001", "cn-shanghai", stQueued, 0), 7), withRev(sampleJob("j-0002", "cn-beijing", stCopying, 10), 8))(r, st)
			return status.Error(codes.Unavailable, "daemon shutting down")
		},
		watch: func(r *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
			watchReq <- r
			for i, j := range []*replicatorv1.Job{sampleJob("j-0002", "cn-beijing", stSucceeded, 100), sampleJob("j-0001", "cn-shanghai", stSucceeded, 100)} {
				if err := st.Send(&replicatorv1.WatchResponse{Revision: int64(9 + i), Job: withRev(j, int64(9+i))}); err != nil {
					return err
				}
			}
			<-st.Context().Done() // the client leaves once all are terminal
			return nil
		},
	}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b,c")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	r := <-watchReq
	if fmt.Sprint(r.JobIds) != "[j-0001 j-0002]" || r.FromRevision != 8 || copies != 1 {
		t.Errorf("watch request %v after %d Copy calls", r, copies)
	}
	if !strings.Contains(res.stderr, "following the jobs with watch") || strings.Count(res.stdout, "SUCCEEDED") != 2 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
}

// watch resumes from the last revision after a lost connection, and from a
// fresh snapshot when that revision was compacted.
func TestWatchReconnectsAndRestartsAfterCompaction(t *testing.T) {
	reqs := make(chan *replicatorv1.WatchRequest, 10)
	var calls int
	j1 := sampleJob("j-0001", "cn-shanghai", stCopying, 10)
	srv := &fakeServer{watch: func(r *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
		calls++
		reqs <- r
		send := func(m *replicatorv1.WatchResponse) {
			if err := st.Send(m); err != nil {
				t.Error(err)
			}
		}
		switch calls {
		case 1:
			send(&replicatorv1.WatchResponse{Revision: 10, Job: withRev(proto.Clone(j1).(*replicatorv1.Job), 10), Snapshot: true})
			send(&replicatorv1.WatchResponse{Revision: 10, SnapshotComplete: true})
			j := proto.Clone(j1).(*replicatorv1.Job)
			j.ProgressPercent = 30
			send(&replicatorv1.WatchResponse{Revision: 11, Job: withRev(j, 11)})
			return status.Error(codes.Unavailable, "connection reset")
		case 2:
			return status.Error(codes.OutOfRange, "revision 11 was compacted; oldest retained is 50")
		default:
			j := proto.Clone(j1).(*replicatorv1.Job)
			j.State, j.ProgressPercent, j.CloudStatus = stSucceeded, 100, "Available"
			// The test may stop the client as soon as it has seen the job,
			// so these sends may fail.
			_ = st.Send(&replicatorv1.WatchResponse{Revision: 60, Job: withRev(j, 60), Snapshot: true})
			_ = st.Send(&replicatorv1.WatchResponse{Revision: 60, SnapshotComplete: true})
			<-st.Context().Done()
			return nil
		}
	}}
	addr := serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := newSyncBuffer(), newSyncBuffer()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--address", addr, "watch", "--policy", "nightly"}, testEnv(out, errb, nil))
	}()
	out.waitForText(t, " SUCCEEDED 100% Available")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("watch interrupted: exit %d, want 0", code)
	}
	var revs []int64
	for range 3 {
		r := <-reqs
		revs = append(revs, r.FromRevision)
		if r.Policy != "nightly" {
			t.Errorf("filter lost on reconnect: %v", r)
		}
	}
	if fmt.Sprint(revs) != "[0 11 0]" {
		t.Errorf("from_revision of the three calls = %v, want [0 11 0]", revs)
	}
	for _, want := range []string{"reconnecting from revision 11", "revision 11 is no longer retained (compacted); restarting from a fresh snapshot"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.Contains(lines[1], " COPYING 30% ") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

func TestWatchJSONLinesIncludeMarker(t *testing.T) {
	srv := &fakeServer{watch: func(r *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
		_ = st.Send(&replicatorv1.WatchResponse{Revision: 5, Job: sampleJob("j-0001", "cn-shanghai", stWaiting, 0), Snapshot: true})
		_ = st.Send(&replicatorv1.WatchResponse{Revision: 5, SnapshotComplete: true})
		<-st.Context().Done()
		return nil
	}}
	addr := serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := newSyncBuffer(), newSyncBuffer()
	done := make(chan int)
	go func() { done <- run(ctx, []string{"--address", addr, "watch", "-o", "json"}, testEnv(out, errb, nil)) }()
	out.waitForText(t, `"snapshotComplete":true`)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	golden(t, "watch_json", []byte(out.String()))
}

func TestTLSWithToken(t *testing.T) {
	ca, serverCert := newTestCA(t)
	srv := &fakeServer{pols: samplePolicies()}
	lis := listenTLS(t, serverCert)
	addr := startGRPC(t, lis, srv)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	res := runReplctl(t, context.Background(), map[string]string{"REPLCTL_TOKEN": "tok"}, "--address", addr, "--cacert", caFile, "policies")
	if res.code != 0 || len(srv.auth) != 1 || srv.auth[0] != "Bearer tok" {
		t.Errorf("TLS: exit %d, stderr %q, auth %q", res.code, res.stderr, srv.auth)
	}
	// Without the CA the server is not trusted: the call fails as UNAVAILABLE.
	res = runReplctl(t, context.Background(), nil, "--address", addr, "policies")
	if res.code != 10+int(codes.Unavailable) || !strings.Contains(res.stderr, "certificate") {
		t.Errorf("untrusted server: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestEveryCommandHasExamples(t *testing.T) {
	root := newRootCommand(&app{env: testEnv(newSyncBuffer(), newSyncBuffer(), nil)})
	stack := root.Commands()
	if root.Example == "" {
		t.Error("root command has no Example")
	}
	for len(stack) > 0 {
		c := stack[0]
		stack = append(stack[1:], c.Commands()...)
		if c.Hidden {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("command %q has no Example", c.CommandPath())
		}
	}
	res := runReplctl(t, context.Background(), nil, "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "Exit codes:") || !strings.Contains(res.stdout, "24  Unavailable") {
		t.Errorf("root help lacks the exit code table:\n%s", res.stdout)
	}
}

func TestCompletionAndVersion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		res := runReplctl(t, context.Background(), nil, "completion", sh)
		if res.code != 0 || !strings.Contains(res.stdout, "replctl") || len(res.stdout) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, res.code, len(res.stdout))
		}
	}
	res := runReplctl(t, context.Background(), nil, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "replctl ") {
		t.Errorf("version: exit %d %q", res.code, res.stdout)
	}
}

func TestJobIDCompletion(t *testing.T) {
	var got *replicatorv1.ListJobsRequest
	srv := &fakeServer{list: func(r *replicatorv1.ListJobsRequest) (*replicatorv1.ListJobsResponse, error) {
		got = proto.Clone(r).(*replicatorv1.ListJobsRequest)
		return &replicatorv1.ListJobsResponse{Jobs: []*replicatorv1.Job{
			sampleJob("j-0001", "cn-shanghai", stFailed, 0), sampleJob("j-0002", "cn-beijing", stCancelled, 0), sampleJob("k-0003", "cn-beijing", stFailed, 0),
		}}, nil
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), map[string]string{"REPLCTL_ADDRESS": addr}, "__complete", "retry", "j-0002", "j-")
	want := "j-0001\tm-bp1src0000000000001 cn-hangzhou>cn-shanghai FAILED\n:4\n"
	if res.code != 0 || !strings.HasPrefix(res.stdout, want) {
		t.Errorf("completion: exit %d\n%q\nwant prefix %q", res.code, res.stdout, want)
	}
	if fmt.Sprint(got.GetStates()) != fmt.Sprint([]replicatorv1.JobState{stFailed, stCancelled}) {
		t.Errorf("retry completes failed and cancelled jobs, asked for %v", got.GetStates())
	}
	// No daemon: no candidates and no error text.
	res = runReplctl(t, context.Background(), nil, "--address", "unix:///nonexistent/x.sock", "__complete", "get", "")
	if res.code != 0 || strings.Contains(res.stdout, "replctl:") || !strings.HasPrefix(res.stdout, ":4") {
		t.Errorf("completion without daemon: exit %d %q", res.code, res.stdout)
	}
}

func TestStreamsFailFastWithoutDaemon(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"watch"}, {"copy", "m-1", "--from", "a", "--to", "b"}} {
		res := runReplctl(t, context.Background(), nil, append([]string{"--address", addr}, args...)...)
		if res.code != 10+int(codes.Unavailable) || !strings.Contains(res.stderr, "cannot reach replicatord") {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
}

// A Copy stream cut after every job finished needs no watch.
func TestCopyStreamCutAfterLastJob(t *testing.T) {
	srv := &fakeServer{copy: func(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		_ = copyScript(withRev(sampleJob("j-0001", "cn-shanghai", stSucceeded, 100), 3))(r, st)
		return status.Error(codes.Unavailable, "daemon shutting down")
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b")
	if res.code != 0 || res.stderr != "" {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

// A Copy that cannot reach the daemon is sent again, a bounded number of
// times, always with the same request id, so that a first call that did
// reach the daemon is replayed there instead of copying twice.
func TestCopyRetriesUnavailableWithSameRequestID(t *testing.T) {
	defer func(d time.Duration) { copyRetryMin = d }(copyRetryMin)
	copyRetryMin = time.Millisecond
	var mu sync.Mutex
	var ids []string
	srv := &fakeServer{copy: func(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		mu.Lock()
		ids = append(ids, r.GetRequestId())
		n := len(ids)
		mu.Unlock()
		if n < 3 {
			return status.Error(codes.Unavailable, "connection reset")
		}
		return copyScript(withRev(sampleJob("j-0001", "cn-shanghai", stSucceeded, 100), 4))(r, st)
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("Copy sent %d times with request ids %q, want 3 times the same id", len(ids), ids)
	}
	if !strings.Contains(res.stderr, "sending the copy again with request id "+ids[0]) {
		t.Errorf("stderr does not say the copy was sent again: %q", res.stderr)
	}

	// Bounded: a daemon that stays unavailable gets copyAttempts calls.
	ids = nil
	srv.copy = func(r *replicatorv1.CopyRequest, _ grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		mu.Lock()
		ids = append(ids, r.GetRequestId())
		mu.Unlock()
		return status.Error(codes.Unavailable, "still down")
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b", "--request-id", "build-7")
	if res.code != 10+int(codes.Unavailable) || len(ids) != copyAttempts {
		t.Fatalf("exit %d after %d calls, want %d after %d", res.code, len(ids), 10+int(codes.Unavailable), copyAttempts)
	}
	for _, id := range ids {
		if id != "build-7" {
			t.Fatalf("--request-id build-7 sent as %q", id)
		}
	}

	// Other errors are not retried.
	ids = nil
	srv.copy = func(r *replicatorv1.CopyRequest, _ grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		mu.Lock()
		ids = append(ids, r.GetRequestId())
		mu.Unlock()
		return status.Error(codes.AlreadyExists, `request_id "build-7" was already used`)
	}
	res = runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b", "--request-id", "build-7")
	if res.code != 10+int(codes.AlreadyExists) || len(ids) != 1 || !strings.Contains(res.stderr, "already used") {
		t.Fatalf("ALREADY_EXISTS: exit %d after %d calls, stderr %q", res.code, len(ids), res.stderr)
	}
}

// --force and --request-id reach the request; a bad id is a usage error
// and nothing is sent; the answer's outcome is shown.
func TestCopyForceRequestIDAndOutcome(t *testing.T) {
	var got []*replicatorv1.CopyRequest
	srv := &fakeServer{copy: func(r *replicatorv1.CopyRequest, st grpc.ServerStreamingServer[replicatorv1.CopyResponse]) error {
		got = append(got, r)
		for _, m := range []*replicatorv1.CopyResponse{
			{Job: withRev(sampleJob("j-0001", "cn-shanghai", stSucceeded, 100), 3), Revision: 3, Outcome: replicatorv1.CopyOutcome_COPY_OUTCOME_EXISTING, Replayed: r.GetRequestId() == "again"},
			{Job: withRev(sampleJob("j-0002", "cn-beijing", stSucceeded, 100), 5), Revision: 5, Outcome: replicatorv1.CopyOutcome_COPY_OUTCOME_CREATED, Replayed: r.GetRequestId() == "again"},
		} {
			if err := st.Send(m); err != nil {
				return err
			}
		}
		return nil
	}}
	addr := serve(t, srv)
	res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "cn-shanghai,cn-beijing", "--force", "--request-id", "pipeline/42:a")
	if res.code != 0 || len(got) != 1 || !got[0].GetAllowDuplicate() || got[0].GetRequestId() != "pipeline/42:a" {
		t.Fatalf("exit %d, requests %v", res.code, got)
	}
	if !strings.Contains(res.stderr, "existing job answers cn-shanghai j-0001") || strings.Contains(res.stderr, "j-0002") {
		t.Errorf("stderr does not name the existing job alone: %q", res.stderr)
	}
	if got := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b", "--request-id", "again"); !strings.Contains(got.stderr, "request id again was answered before") {
		t.Errorf("a replayed answer is not said: %q", got.stderr)
	}
	n := len(got)
	for _, bad := range []string{"has space", strings.Repeat("x", 65), "nul\x00"} {
		res := runReplctl(t, context.Background(), nil, "--address", addr, "copy", "m-1", "--from", "a", "--to", "b", "--request-id", bad)
		if res.code != exitUsage || !strings.Contains(res.stderr, "bad --request-id") {
			t.Errorf("--request-id %q: exit %d, stderr %q", bad, res.code, res.stderr)
		}
	}
	if len(got) != n {
		t.Errorf("a bad --request-id was sent")
	}
}

// A stream that breaks between two jobs changed at one revision (one
// transaction, as the etcd store makes a Copy's jobs): watch resumes from
// that revision, the daemon sends both again, and the one already shown
// is not shown twice.
func TestWatchResumeSkipsWhatItShowed(t *testing.T) {
	reqs := make(chan *replicatorv1.WatchRequest, 10)
	var calls int
	a := withRev(sampleJob("j-0001", "cn-shanghai", stQueued, 0), 20)
	b := withRev(sampleJob("j-0002", "cn-beijing", stQueued, 0), 20)
	srv := &fakeServer{watch: func(r *replicatorv1.WatchRequest, st grpc.ServerStreamingServer[replicatorv1.WatchResponse]) error {
		calls++
		reqs <- r
		if calls == 1 {
			_ = st.Send(&replicatorv1.WatchResponse{Revision: 20, Job: a})
			return status.Error(codes.Unavailable, "connection reset")
		}
		for _, j := range []*replicatorv1.Job{a, b} { // the changes at from_revision again
			if err := st.Send(&replicatorv1.WatchResponse{Revision: 20, Job: j}); err != nil {
				return err
			}
		}
		<-st.Context().Done()
		return nil
	}}
	addr := serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := newSyncBuffer(), newSyncBuffer()
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--address", addr, "watch", "--from-revision", "19", "-o", "json"}, testEnv(out, errb, nil))
	}()
	out.waitForText(t, "j-0002")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("watch interrupted: exit %d, want 0", code)
	}
	if r1, r2 := <-reqs, <-reqs; r1.FromRevision != 19 || r2.FromRevision != 20 {
		t.Errorf("from_revision of the two calls = %d, %d, want 19, 20", r1.FromRevision, r2.FromRevision)
	}
	if n1, n2 := strings.Count(out.String(), "j-0001"), strings.Count(out.String(), "j-0002"); n1 != 1 || n2 != 1 {
		t.Errorf("j-0001 shown %d times, j-0002 %d times, want once each:\n%s", n1, n2, out.String())
	}
}
