package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
)

// TestHAWatchResumeWithinARevision: on etcd the jobs of one Copy share one
// revision (one transaction). A Watch stream that broke after the first
// of them resumes with from_revision of the last change it got and still
// receives the others: the changes at from_revision come again.
func TestHAWatchResumeWithinARevision(t *testing.T) {
	_, r := startLeader(t)
	conn, err := grpc.NewClient("unix://"+r.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewReplicatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	wctx, stop := context.WithCancel(ctx)
	w, err := client.Watch(wctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || !m.GetSnapshotComplete() {
		t.Fatalf("first message of a watch of an empty store: %v, %v; want snapshot_complete", m, err)
	}
	regions := []string{"cn-beijing", "cn-shanghai", "cn-qingdao"}
	cs, err := client.Copy(ctx, &pb.CopyRequest{SourceRegion: source, SourceImageId: imgAlinux, DestinationRegions: regions, Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := cs.Recv(); err != nil {
			break
		}
	}
	first, err := w.Recv()
	if err != nil {
		t.Fatal(err)
	}
	stop() // the stream breaks after the first job of the Copy
	rev := first.GetRevision()

	created := map[string]bool{}
	r2, err := client.Watch(ctx, &pb.WatchRequest{FromRevision: rev})
	if err != nil {
		t.Fatal(err)
	}
	for len(created) < len(regions) {
		m, err := r2.Recv()
		if err != nil {
			t.Fatalf("resumed watch from %d: %v after %d of the Copy's jobs", rev, err, len(created))
		}
		if m.GetRevision() == rev {
			created[m.GetJob().GetId()] = true
			continue
		}
		t.Fatalf("resumed watch from %d: a change at %d before the Copy's other jobs (have %d of %d): they share revision %d",
			rev, m.GetRevision(), len(created), len(regions), rev)
	}
	if !created[first.GetJob().GetId()] {
		t.Errorf("the job received before the break (%s) is not among those at revision %d: %v", first.GetJob().GetId(), rev, created)
	}
}
