package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/state"
)

// TestCopyRefusedUntilCloudReady: while the region list is unknown, a Copy
// that names regions is refused with UNAVAILABLE and the reason, and
// nothing is stored; once the cloud is ready the same request is accepted.
func TestCopyRefusedUntilCloudReady(t *testing.T) {
	s := newStack(t, state.Options{})
	ready := errors.New("cloud down")
	s.srv.opts.CloudReady = func() error {
		if ready == nil {
			return nil
		}
		return fmt.Errorf("ECS has not answered yet (%v): %w", ready, errdefs.ErrUnavailable)
	}
	req := &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"xx-nowhere-1"}}
	stream, err := s.client.Copy(context.Background(), req)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "cloud down") {
		t.Fatalf("Copy while the cloud is down: %v, want UNAVAILABLE with the reason", err)
	}
	if rev := s.store.Revision(); rev != 0 {
		t.Errorf("store revision %d after a refused copy, want 0", rev)
	}
	// A malformed region is still INVALID_ARGUMENT: the cloud is not needed
	// to tell.
	stream, err = s.client.Copy(context.Background(), &pb.CopyRequest{SourceRegion: "Hangzhou!", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed region while the cloud is down: %v, want INVALID_ARGUMENT", err)
	}
	ready = nil
	// Now the unknown region is found as such.
	stream, err = s.client.Copy(context.Background(), req)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "unknown region") {
		t.Errorf("Copy to an unknown region once ready: %v, want INVALID_ARGUMENT unknown region", err)
	}
	stream, err = s.client.Copy(context.Background(), &pb.CopyRequest{SourceRegion: "cn-hangzhou", SourceImageId: img20, DestinationRegions: []string{"cn-beijing"}, Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("Copy once ready: %v", err)
		}
	}
}

func TestGetStatus(t *testing.T) {
	s := newStack(t, state.Options{})
	if _, err := s.client.GetStatus(context.Background(), &pb.GetStatusRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("GetStatus without a Status func: %v, want UNIMPLEMENTED", err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.srv.opts.Status = func() Status {
		return Status{Version: "v1.2.3", Reason: "ECS unreachable: connection refused", StartTime: start,
			Cloud: CloudStatus{Provider: "aliyun", Network: "vpc", Endpoint: "https://ecs-vpc.cn-shanghai.aliyuncs.com", LastError: "connection refused"},
			Store: StoreStatus{Backend: "bbolt", Path: "/var/lib/replicatord/state.db", Revision: 7}}
	}
	resp, err := s.client.GetStatus(context.Background(), &pb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != pb.ServingStatus_SERVING_STATUS_NOT_SERVING || resp.GetReason() != "ECS unreachable: connection refused" ||
		resp.GetVersion() != "v1.2.3" || !resp.GetStartTime().AsTime().Equal(start) ||
		resp.GetCloud().GetNetwork() != "vpc" || resp.GetCloud().GetReachable() || resp.GetCloud().GetLastReachedTime() != nil ||
		resp.GetStore().GetBackend() != "bbolt" || resp.GetStore().GetRevision() != 7 || len(resp.GetMembers()) != 0 {
		t.Errorf("GetStatus = %v", resp)
	}
}
