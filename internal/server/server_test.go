package server

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/clock"
	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
	"github.com/replicatord/replicatord/internal/scheduler"
	"github.com/replicatord/replicatord/internal/state"
	"github.com/replicatord/replicatord/internal/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const (
	img20 = "m-bp1f5c9ka0z2wn3hj6ys" // demo image, 20 GiB
)

// stack is the whole daemon in-process: the emulator over HTTP, the SDK
// adapter, a bbolt file, the scheduler and this server over a real unix
// socket.
type stack struct {
	store  *state.DB
	srv    *Server
	client pb.ReplicatorServiceClient
	cloud  *aliyun.Provider
}

func newStack(t *testing.T, opts state.Options) *stack {
	t.Helper()
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"LTAIk": "s"}, TimeScale: 2000, StartupDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(emu)
	prov, err := aliyun.New(aliyun.Config{Endpoint: hs.URL, Insecure: true, Credentials: aliyun.Credentials{AccessKeyID: "LTAIk", AccessKeySecret: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(store, prov, scheduler.Options{PollMin: 50 * time.Millisecond, PollMax: time.Second, Lookahead: 1})
	if err := sched.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	regions, err := prov.DescribeRegions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, r := range regions {
		known[r.ID] = true
	}
	// The daemon's own server options: its interceptors turn the handlers'
	// errdefs errors into statuses.
	sock := filepath.Join(dir, "s.sock")
	gopts, err := transport.ServerOptions(transport.ServerConfig{Address: "unix://" + sock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(gopts...)
	srv := New(store, sched, prov, Options{Regions: func() map[string]bool { return known }})
	srv.Register(g)
	ln, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "s.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sched.Stop(ctx)
		store.Close()
		prov.Close()
		hs.Close()
		emu.Close()
	})
	return &stack{store: store, srv: srv, client: pb.NewReplicatorServiceClient(conn), cloud: prov}
}

// Every bad request gets INVALID_ARGUMENT (or NOT_FOUND) naming the field,
// and changes nothing in the store.
func TestBadRequestsChangeNothing(t *testing.T) {
	s := newStack(t, state.Options{})
	ctx := context.Background()
	long := strings.Repeat("x", 300)
	ok := func() *pb.CopyRequest {
		return &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}}
	}
	with := func(f func(*pb.CopyRequest)) *pb.CopyRequest { r := ok(); f(r); return r }
	many := make([]string, 65)
	for i := range many {
		many[i] = "cn-beijing"
	}
	copyCases := []struct {
		name  string
		req   *pb.CopyRequest
		code  codes.Code
		field string
	}{
		{"empty request", &pb.CopyRequest{}, codes.InvalidArgument, "source_region"},
		{"empty image id", with(func(r *pb.CopyRequest) { r.SourceImageId = "" }), codes.InvalidArgument, "source_image_id"},
		{"bad image id", with(func(r *pb.CopyRequest) { r.SourceImageId = "i-123" }), codes.InvalidArgument, "source_image_id"},
		{"oversized image id", with(func(r *pb.CopyRequest) { r.SourceImageId = "m-" + long }), codes.InvalidArgument, "source_image_id"},
		{"unknown source region", with(func(r *pb.CopyRequest) { r.SourceRegion = "xx-nowhere-1" }), codes.InvalidArgument, "source_region"},
		{"no destination", with(func(r *pb.CopyRequest) { r.DestinationRegions = nil }), codes.InvalidArgument, "destination_regions"},
		{"unknown destination", with(func(r *pb.CopyRequest) { r.DestinationRegions = []string{"xx-nowhere-1"} }), codes.InvalidArgument, "destination_regions"},
		{"destination is source", with(func(r *pb.CopyRequest) { r.DestinationRegions = []string{"cn-hangzhou"} }), codes.InvalidArgument, "destination_regions"},
		{"duplicate destination", with(func(r *pb.CopyRequest) { r.DestinationRegions = []string{"cn-beijing", "cn-beijing"} }), codes.InvalidArgument, "destination_regions"},
		{"too many destinations", with(func(r *pb.CopyRequest) { r.DestinationRegions = many }), codes.InvalidArgument, "destination_regions"},
		{"bad name", with(func(r *pb.CopyRequest) { r.DestinationImageName = "1-starts-with-digit" }), codes.InvalidArgument, "destination_image_name"},
		{"oversized name", with(func(r *pb.CopyRequest) { r.DestinationImageName = "a" + long }), codes.InvalidArgument, "destination_image_name"},
		{"reserved name", with(func(r *pb.CopyRequest) { r.DestinationImageName = "aliyun-copy" }), codes.InvalidArgument, "destination_image_name"},
		{"bad description", with(func(r *pb.CopyRequest) { r.DestinationDescription = "http://x" }), codes.InvalidArgument, "destination_description"},
		{"kms without encryption", with(func(r *pb.CopyRequest) { r.KmsKeyId = "key-1" }), codes.InvalidArgument, "kms_key_id"},
		{"reserved tag", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"replicatord:job-id": "x"} }), codes.InvalidArgument, "tags"},
		{"empty tag key", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"": "x"} }), codes.InvalidArgument, "tags"},
		{"unknown image", with(func(r *pb.CopyRequest) { r.SourceImageId = "m-bp1nosuchimage00000000" }), codes.NotFound, "m-bp1nosuchimage00000000"},
		// An image another account shares with this one is listed by ECS
		// (ImageOwnerAlias others) but is not this account's to copy.
		{"shared-in image", with(func(r *pb.CopyRequest) { r.SourceImageId = "m-bp1s8h4r3d0i6m4g2e1s" }), codes.NotFound, "custom images"},
		{"request id too long", with(func(r *pb.CopyRequest) { r.RequestId = strings.Repeat("r", 65) }), codes.InvalidArgument, "request_id"},
		{"request id with a space", with(func(r *pb.CopyRequest) { r.RequestId = "my request" }), codes.InvalidArgument, "request_id"},
		{"priority too high", with(func(r *pb.CopyRequest) { r.Priority = 1001 }), codes.InvalidArgument, "priority"},
		{"priority too low", with(func(r *pb.CopyRequest) { r.Priority = -1001 }), codes.InvalidArgument, "priority"},
		{"request id not ASCII", with(func(r *pb.CopyRequest) { r.RequestId = "réq" }), codes.InvalidArgument, "printable ASCII"},
		{"NUL in description", with(func(r *pb.CopyRequest) { r.DestinationDescription = "nul\x00here" }), codes.InvalidArgument, "U+0000"},
		{"newline in description", with(func(r *pb.CopyRequest) { r.DestinationDescription = "two\nlines" }), codes.InvalidArgument, "destination_description"},
		{"NUL in tag key", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"te\x00am": "x"} }), codes.InvalidArgument, "control character"},
		{"escape in tag value", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"team": "\x1b[31mred"} }), codes.InvalidArgument, "U+001B"},
		{"reserved tag, capitalised", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"Replicatord:job-id": "x"} }), codes.InvalidArgument, "reserved"},
		{"reserved tag, upper case", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"REPLICATORD:policy": "x"} }), codes.InvalidArgument, "reserved"},
		{"Aliyun tag", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"Aliyun-x": "x"} }), codes.InvalidArgument, "aliyun"},
	}
	// A huge value is echoed clipped, in the error as in the logs.
	huge := "cn-" + strings.Repeat("a", 1<<20)
	for _, c := range []struct {
		name string
		req  *pb.CopyRequest
	}{
		{"1 MiB unknown region", with(func(r *pb.CopyRequest) { r.DestinationRegions = []string{huge} })},
		{"1 MiB source region", with(func(r *pb.CopyRequest) { r.SourceRegion = huge })},
		{"1 MiB tag key", with(func(r *pb.CopyRequest) { r.Tags = map[string]string{"Replicatord:" + huge: "x"} })},
		{"1 MiB request id", with(func(r *pb.CopyRequest) { r.RequestId = huge })},
	} {
		st, err := s.client.Copy(ctx, c.req)
		if err == nil {
			_, err = st.Recv()
		}
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.InvalidArgument || len(msg) > 600 || !strings.Contains(msg, "bytes)") {
			t.Errorf("%s: %v, %d-byte message %.300q; want INVALID_ARGUMENT with the value clipped", c.name, status.Code(err), len(msg), msg)
		}
	}
	rev := s.store.Revision()
	for _, c := range copyCases {
		st, err := s.client.Copy(ctx, c.req)
		if err == nil {
			_, err = st.Recv()
		}
		checkErr(t, c.name, err, c.code, c.field)
	}
	unary := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"cancel nothing", func() error { _, err := s.client.Cancel(ctx, &pb.CancelRequest{}); return err }, codes.InvalidArgument, "job_ids"},
		{"cancel bad id", func() error {
			_, err := s.client.Cancel(ctx, &pb.CancelRequest{JobIds: []string{"x"}})
			return err
		}, codes.InvalidArgument, "job_ids"},
		{"cancel duplicate ids", func() error {
			_, err := s.client.Cancel(ctx, &pb.CancelRequest{JobIds: []string{"j-00000000000000000000000000", "j-00000000000000000000000000"}})
			return err
		}, codes.InvalidArgument, "job_ids"},
		{"cancel unknown", func() error {
			_, err := s.client.Cancel(ctx, &pb.CancelRequest{JobIds: []string{"j-00000000000000000000000000"}})
			return err
		}, codes.NotFound, "j-00000000000000000000000000"},
		{"get empty", func() error { _, err := s.client.GetJob(ctx, &pb.GetJobRequest{}); return err }, codes.InvalidArgument, "job_id"},
		{"list bad page size", func() error { _, err := s.client.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 5000}); return err }, codes.InvalidArgument, "page_size"},
		{"list bad state", func() error {
			_, err := s.client.ListJobs(ctx, &pb.ListJobsRequest{States: []pb.JobState{42}})
			return err
		}, codes.InvalidArgument, "states"},
		{"list bad token", func() error { _, err := s.client.ListJobs(ctx, &pb.ListJobsRequest{PageToken: "!!"}); return err }, codes.InvalidArgument, "token"},
		{"watch future revision", func() error {
			w, err := s.client.Watch(ctx, &pb.WatchRequest{FromRevision: 1 << 40})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}, codes.OutOfRange, "revision"},
		{"watch negative revision", func() error {
			w, err := s.client.Watch(ctx, &pb.WatchRequest{FromRevision: -1})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}, codes.InvalidArgument, "from_revision"},
	}
	for _, c := range unary {
		checkErr(t, c.name, c.call(), c.code, c.field)
	}
	if got := s.store.Revision(); got != rev {
		t.Fatalf("bad requests changed the store: revision %d -> %d", rev, got)
	}
}

func checkErr(t *testing.T, name string, err error, code codes.Code, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), field) {
		t.Errorf("%s: got %v %q, want %v naming %q", name, st.Code(), st.Message(), code, field)
	}
}

// Copy streams every change of its jobs until all are terminal; Watch
// sends a snapshot, a marker, then changes with increasing revisions, and
// resumes from a revision without missing anything.
func TestCopyAndWatch(t *testing.T) {
	s := newStack(t, state.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w, err := s.client.Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || !first.GetSnapshotComplete() {
		t.Fatalf("empty store: first message %v %v, want the snapshot marker", first, err)
	}

	st, err := s.client.Copy(ctx, &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing", "cn-shanghai"}, Tags: map[string]string{"team": "platform"}})
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]*pb.Job{}
	var lastRev int64
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Revision <= lastRev {
			t.Fatalf("copy stream revision %d after %d", m.Revision, lastRev)
		}
		lastRev = m.Revision
		final[m.Job.Id] = m.Job
	}
	if len(final) != 2 {
		t.Fatalf("copy streamed %d jobs, want 2", len(final))
	}
	for _, j := range final {
		if j.State != pb.JobState_JOB_STATE_SUCCEEDED || j.ProgressPercent != 100 || j.DestinationImageId == "" || j.SizeGib != 20 || j.Tags["team"] != "platform" {
			t.Fatalf("job ended as %v", j)
		}
	}

	// The watcher saw the same changes, revisions strictly increasing and
	// no job's state going back.
	seen := map[string]pb.JobState{}
	var revs []int64
	for len(seen) < 2 || !allDone(seen) {
		m, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) > 0 && m.Revision <= revs[len(revs)-1] {
			t.Fatalf("watch revision %d after %d", m.Revision, revs[len(revs)-1])
		}
		revs = append(revs, m.Revision)
		if prev, ok := seen[m.Job.Id]; ok && rank(m.Job.State) < rank(prev) {
			t.Fatalf("job %s went back from %v to %v", m.Job.Id, prev, m.Job.State)
		}
		seen[m.Job.Id] = m.Job.State
	}

	// Resuming from a revision replays the change at it again (another
	// job may share that revision), then exactly what came after it.
	mid := revs[len(revs)/2]
	r, err := s.client.Watch(ctx, &pb.WatchRequest{FromRevision: mid})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range revs[len(revs)/2:] {
		m, err := r.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Revision != want {
			t.Fatalf("resumed watch sent revision %d, want %d", m.Revision, want)
		}
	}

	// A snapshot watch now shows both finished jobs.
	snap, err := s.client.Watch(ctx, &pb.WatchRequest{SourceImageId: img20})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		m, err := snap.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.SnapshotComplete {
			break
		}
		if !m.Snapshot || m.Job.State != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Fatalf("snapshot message %v", m)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("snapshot held %d jobs, want 2", n)
	}
}

func allDone(m map[string]pb.JobState) bool {
	for _, s := range m {
		if s != pb.JobState_JOB_STATE_SUCCEEDED {
			return false
		}
	}
	return true
}

func rank(s pb.JobState) int {
	return map[pb.JobState]int{1: 1, 2: 2, 3: 3, 4: 4, 7: 5, 5: 6, 6: 6, 8: 6}[s]
}

// A watch from a revision that was compacted away gets OUT_OF_RANGE, not
// silence.
func TestWatchCompacted(t *testing.T) {
	s := newStack(t, state.Options{HistoryLimit: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := s.client.Copy(ctx, &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.client.Watch(ctx, &pb.WatchRequest{FromRevision: 1})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("watch from a compacted revision: %v, want OUT_OF_RANGE", err)
	}
}

// Stop ends open streams with UNAVAILABLE and the revision to resume from,
// so that a graceful stop does not wait for watchers.
func TestStopEndsStreams(t *testing.T) {
	s := newStack(t, state.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := s.client.Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || !m.SnapshotComplete {
		t.Fatalf("first message %v %v", m, err)
	}
	s.srv.Stop()
	_, err = w.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "from_revision") {
		t.Fatalf("after Stop: %v, want UNAVAILABLE naming the revision to resume from", err)
	}
}

// copyAll runs one Copy to its end and returns its last message per job.
func copyAll(t *testing.T, c pb.ReplicatorServiceClient, req *pb.CopyRequest) (map[string]*pb.CopyResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := c.Copy(ctx, req)
	if err != nil {
		return nil, err
	}
	out := map[string]*pb.CopyResponse{}
	var lastRev int64
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if m.Revision <= lastRev {
			t.Errorf("copy stream revision %d after %d", m.Revision, lastRev)
		}
		lastRev = m.Revision
		if prev, ok := out[m.Job.Id]; ok && (prev.Outcome != m.Outcome || prev.Replayed != m.Replayed) {
			t.Errorf("job %s: outcome changed within one stream", m.Job.Id)
		}
		out[m.Job.Id] = m
	}
}

// copiesOf lists the copies of src in region as ECS (the emulator) has them.
func (s *stack) copiesOf(t *testing.T, region, src string) int {
	t.Helper()
	imgs, err := s.cloud.DescribeImages(context.Background(), cloud.ImageQuery{Region: region, Statuses: cloud.AllStatuses})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, im := range imgs {
		if im.Tags[job.TagSourceImage] == src {
			n++
		}
	}
	return n
}

func ids(m map[string]*pb.CopyResponse) []string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// The same request_id twice makes one copy per destination; the second
// call streams the same jobs, marked replayed; other parameters under the
// same id are ALREADY_EXISTS naming the first request.
func TestCopyRequestIDIsIdempotent(t *testing.T) {
	s := newStack(t, state.Options{})
	req := &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing", "cn-shanghai"},
		DestinationImageName: "alinux-copy", RequestId: "pipeline-run-42"}
	first, err := copyAll(t, s.client, req)
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range first {
		if m.Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED || m.Replayed || m.Job.State != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Fatalf("first call, job %s: outcome %v replayed %v state %v", id, m.Outcome, m.Replayed, m.Job.State)
		}
	}
	// The retry lists the destinations in another order: same request.
	retry := proto.Clone(req).(*pb.CopyRequest)
	retry.DestinationRegions = []string{"cn-shanghai", "cn-beijing"}
	second, err := copyAll(t, s.client, retry)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(first), ids(second)) || len(first) != 2 {
		t.Fatalf("retry answered jobs %v, first call %v", ids(second), ids(first))
	}
	for id, m := range second {
		if !m.Replayed || m.Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED || m.Job.State != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("retry, job %s: replayed %v outcome %v state %v", id, m.Replayed, m.Outcome, m.Job.State)
		}
	}
	for _, r := range []string{"cn-beijing", "cn-shanghai"} {
		if n := s.copiesOf(t, r, img20); n != 1 {
			t.Errorf("%s has %d copies of %s in ECS, want 1", r, n, img20)
		}
	}
	other := proto.Clone(req).(*pb.CopyRequest)
	other.DestinationImageName = "another-name"
	_, err = copyAll(t, s.client, other)
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(msg, "pipeline-run-42") || !strings.Contains(msg, "named alinux-copy") {
		t.Fatalf("same id, other parameters: %v %q; want ALREADY_EXISTS naming the earlier request", status.Code(err), msg)
	}
	for _, id := range ids(first) {
		if !strings.Contains(msg, id) {
			t.Errorf("the refusal does not name job %s: %q", id, msg)
		}
	}
}

// Concurrent identical requests over real gRPC create their jobs once.
func TestCopyConcurrentSameRequestID(t *testing.T) {
	s := newStack(t, state.Options{})
	req := &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}, Detach: true, RequestId: "same-id", AllowDuplicate: true}
	const n = 8
	var wg sync.WaitGroup
	answers := make([][]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := copyAll(t, s.client, req)
			answers[i], errs[i] = ids(m), err
		}()
	}
	wg.Wait()
	for i := range answers {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if len(answers[i]) != 1 || answers[i][0] != answers[0][0] {
			t.Fatalf("call %d answered %v, call 0 %v", i, answers[i], answers[0])
		}
	}
	jobs, _, _, err := s.store.List(context.Background(), state.Filter{}, 100, "")
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%d concurrent identical calls stored %d jobs (%v), want 1", n, len(jobs), err)
	}
}

// Without a request id, a Copy of what a job already copies returns that
// job (EXISTING) instead of a second copy; allow_duplicate makes one; a
// different name, or encryption, is a different copy.
func TestCopyReturnsExistingJob(t *testing.T) {
	s := newStack(t, state.Options{})
	req := func() *pb.CopyRequest {
		return &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}}
	}
	succeeded := func(what string, m map[string]*pb.CopyResponse) {
		t.Helper()
		for id, r := range m {
			if r.Job.State != pb.JobState_JOB_STATE_SUCCEEDED {
				t.Fatalf("%s: job %s ended %v %v", what, id, r.Job.State, r.Job.Error)
			}
		}
	}
	first, err := copyAll(t, s.client, req())
	if err != nil {
		t.Fatal(err)
	}
	succeeded("first", first)
	noName := req()
	noName.DestinationRegions = []string{"cn-beijing", "cn-shanghai"}
	again, err := copyAll(t, s.client, noName)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 {
		t.Fatalf("answered %d jobs, want 2", len(again))
	}
	for id, m := range again {
		switch {
		case first[id] != nil && m.Outcome != pb.CopyOutcome_COPY_OUTCOME_EXISTING:
			t.Errorf("job %s of the first call: outcome %v, want EXISTING", id, m.Outcome)
		case first[id] == nil && (m.Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED || m.Job.DestinationRegion != "cn-shanghai"):
			t.Errorf("new job %s: outcome %v region %s, want a CREATED cn-shanghai job", id, m.Outcome, m.Job.DestinationRegion)
		}
	}
	if n := s.copiesOf(t, "cn-beijing", img20); n != 1 {
		t.Fatalf("cn-beijing has %d copies after the repeated Copy, want 1", n)
	}
	forced := req()
	forced.AllowDuplicate = true
	dup, err := copyAll(t, s.client, forced)
	if err != nil {
		t.Fatal(err)
	}
	succeeded("allow_duplicate", dup)
	for id, m := range dup {
		if first[id] != nil || m.Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED {
			t.Errorf("allow_duplicate answered job %s outcome %v, want a new CREATED job", id, m.Outcome)
		}
	}
	renamed := req()
	renamed.DestinationImageName = "other-name"
	m, err := copyAll(t, s.client, renamed)
	if err != nil || len(m) != 1 || m[ids(m)[0]].Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED {
		t.Fatalf("a copy of another name was not created: %v %v", m, err)
	}
	succeeded("renamed", m)
	// Asking again for that name finds it.
	if m2, err := copyAll(t, s.client, renamed); err != nil || len(m2) != 1 || m2[ids(m)[0]] == nil || m2[ids(m)[0]].Outcome != pb.CopyOutcome_COPY_OUTCOME_EXISTING {
		t.Errorf("the named copy asked again: %v %v, want job %s EXISTING", m2, err, ids(m)[0])
	}
	// Encryption asked for is not answered by a plain copy.
	enc := req()
	enc.Encrypted = true
	enc.Detach = true
	if m3, err := copyAll(t, s.client, enc); err != nil || len(m3) != 1 || m3[ids(m3)[0]].Outcome != pb.CopyOutcome_COPY_OUTCOME_CREATED {
		t.Errorf("an encrypted copy was answered by a plain one: %v %v", m3, err)
	}
	if n := s.copiesOf(t, "cn-beijing", img20); n != 4 {
		t.Fatalf("cn-beijing has %d copies, want 4 (first, forced, renamed, encrypted)", n)
	}
}

// GetJob and ListJobs answer a COPYING job's progress as of the response,
// extrapolated from ECS's last report and marked as an estimate, with the
// report beside it; other jobs carry ECS's values unmarked.
func TestProgressAsOfResponse(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	copying := &job.Job{ID: job.NewID(at), SourceRegion: "cn-hangzhou", SourceImageID: img20, DestinationRegion: "cn-beijing",
		State: job.StateCopying, CloudStatus: "Creating", ProgressPercent: 40, Remaining: 10 * time.Minute,
		ProgressTime: at, CreateTime: at, UpdateTime: at.Add(time.Minute)}
	waiting := &job.Job{ID: job.NewID(at.Add(time.Millisecond)), SourceRegion: "cn-hangzhou", SourceImageID: img20, DestinationRegion: "cn-shanghai",
		State: job.StateWaiting, CloudStatus: "Waiting", Remaining: time.Hour, ProgressTime: at, CreateTime: at, UpdateTime: at}
	if err := store.Create(ctx, copying, waiting); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(at.Add(150 * time.Second))
	srv := New(store, nil, nil, Options{Clock: clk})

	get := func() *pb.Job {
		t.Helper()
		r, err := srv.GetJob(ctx, &pb.GetJobRequest{JobId: copying.ID})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetJob()
	}
	j := get()
	if j.GetProgressPercent() != 55 || !j.GetProgressEstimated() || j.GetObservedProgressPercent() != 40 ||
		j.GetRemaining().AsDuration() != 450*time.Second || j.GetObservedRemaining().AsDuration() != 10*time.Minute ||
		!j.GetProgressTime().AsTime().Equal(at) {
		t.Errorf("COPYING job 150s after the report: %v", j)
	}
	clk.Set(at.Add(time.Hour)) // long past the time left: 99%, any moment
	if j := get(); j.GetProgressPercent() != 99 || j.GetRemaining() == nil || j.GetRemaining().AsDuration() != 0 || !j.GetProgressEstimated() {
		t.Errorf("COPYING job past its time left: %d%% remaining %v estimated %v", j.GetProgressPercent(), j.GetRemaining(), j.GetProgressEstimated())
	}
	list, err := srv.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list.GetJobs() {
		switch j.GetId() {
		case copying.ID:
			if j.GetProgressPercent() != 99 || !j.GetProgressEstimated() {
				t.Errorf("listed COPYING job: %v", j)
			}
		case waiting.ID:
			if j.GetProgressPercent() != 0 || j.GetProgressEstimated() || j.GetRemaining().AsDuration() != time.Hour {
				t.Errorf("WAITING job must carry ECS's values: %v", j)
			}
		}
	}
	// A record from before progress_time: its update_time stands in.
	if _, err := store.Update(ctx, copying.ID, func(j *job.Job) error { j.ProgressTime = time.Time{}; return nil }); err != nil {
		t.Fatal(err)
	}
	upd, _ := store.Get(ctx, copying.ID)
	clk.Set(upd.UpdateTime.Add(5 * time.Minute))
	if j := get(); j.GetProgressPercent() != 70 || !j.GetProgressTime().AsTime().Equal(upd.UpdateTime) {
		t.Errorf("COPYING job without progress_time, 5m after its update: %d%% at %v", j.GetProgressPercent(), j.GetProgressTime())
	}
}
