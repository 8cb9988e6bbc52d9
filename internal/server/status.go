package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
)

// Status is what GetStatus reports, filled by the daemon.
type Status struct {
	Version   string
	Serving   bool
	Reason    string // why not serving
	StartTime time.Time
	Cloud     CloudStatus
	Store     StoreStatus
	// Leader is the id of the member that leads; Members every member.
	Leader       string
	Members      []Member
	MembersError string // why the members could not be read
}

// Member is one replica sharing the store.
type Member struct {
	ID, Address, Role, Version, ConfigHash string
	Started                                time.Time
}

// CloudStatus is the daemon's view of the cloud.
type CloudStatus struct {
	Provider, Network, Endpoint string
	Reachable                   bool
	LastError                   string
	LastReached                 time.Time
	Regions                     int
	Credentials                 string // masked key id and its source
}

// StoreStatus describes the job store.
type StoreStatus struct {
	Backend, Path string
	Revision      int64
}

// GetStatus reports the daemon's status; it never calls the cloud.
func (s *Server) GetStatus(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	if s.opts.Status == nil {
		return nil, fmt.Errorf("status is not served by this server: %w", errdefs.ErrUnimplemented)
	}
	st := s.opts.Status()
	resp := &pb.GetStatusResponse{
		Version: st.Version,
		Status:  pb.ServingStatus_SERVING_STATUS_NOT_SERVING,
		Reason:  st.Reason,
		Cloud: &pb.CloudStatus{
			Provider:    st.Cloud.Provider,
			Reachable:   st.Cloud.Reachable,
			LastError:   st.Cloud.LastError,
			Network:     st.Cloud.Network,
			Endpoint:    st.Cloud.Endpoint,
			Regions:     int32(st.Cloud.Regions),
			Credentials: st.Cloud.Credentials,
		},
		Store: &pb.StoreStatus{Backend: st.Store.Backend, Path: st.Store.Path, Revision: st.Store.Revision},
	}
	if st.Serving {
		resp.Status = pb.ServingStatus_SERVING_STATUS_SERVING
	}
	resp.Leader, resp.MembersError = st.Leader, st.MembersError
	for _, m := range st.Members {
		pm := &pb.ReplicaMember{Id: m.ID, Address: m.Address, Role: m.Role, Version: m.Version, ConfigHash: m.ConfigHash}
		if !m.Started.IsZero() {
			pm.StartTime = timestamppb.New(m.Started)
		}
		resp.Members = append(resp.Members, pm)
	}
	if !st.StartTime.IsZero() {
		resp.StartTime = timestamppb.New(st.StartTime)
	}
	if !st.Cloud.LastReached.IsZero() {
		resp.Cloud.LastReachedTime = timestamppb.New(st.Cloud.LastReached)
	}
	return resp, nil
}
