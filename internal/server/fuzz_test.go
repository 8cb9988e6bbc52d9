package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
	"github.com/replicatord/replicatord/internal/input"
	"github.com/replicatord/replicatord/internal/state"
)

// FuzzValidateCopy feeds arbitrary requests to the Copy validator: it must
// never panic, must classify every refusal as INVALID_ARGUMENT naming a
// field, and must only accept requests that keep its promises.
func FuzzValidateCopy(f *testing.F) {
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing,cn-shanghai", "copy-1", "a description", "key", "team", "platform", true, "", false)
	f.Add("", "", "", "", "", "", "", "", false, "", false)
	f.Add("cn-hangzhou", "m-x", "cn-hangzhou", "1bad", "http://x", "k", "replicatord:job-id", "v", false, "", false)
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing,cn-beijing", "aliyun-x", "\xff\xfe", "", "", "", false, "", false)
	// request_id and allow_duplicate, and the control-character and case rules.
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing", "", "", "", "", "", false, "pipeline-42/build:7", true)
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing", "", "", "", "", "", false, "has space", false)
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing", "", "", "", "", "", false, "0123456789012345678901234567890123456789012345678901234567890123x", false)
	f.Add("cn-hangzhou", "m-bp1f5c9ka0z2wn3hj6ys", "cn-beijing", "", "nul\x00inside", "", "Replicatord:policy", "v\x1b", false, "id\x7f", false)
	known := map[string]bool{"cn-hangzhou": true, "cn-beijing": true, "cn-shanghai": true, "ap-southeast-1": true}
	s := &Server{opts: Options{Regions: func() map[string]bool { return known }}}
	f.Fuzz(func(t *testing.T, src, image, dests, name, desc, kms, tagKey, tagValue string, encrypted bool, requestID string, allowDuplicate bool) {
		req := &pb.CopyRequest{
			SourceRegion: src, SourceImageId: image, DestinationImageName: name,
			DestinationDescription: desc, KmsKeyId: kms, Encrypted: encrypted,
			RequestId: requestID, AllowDuplicate: allowDuplicate,
		}
		if dests != "" {
			req.DestinationRegions = strings.Split(dests, ",")
		}
		if tagKey != "" || tagValue != "" {
			req.Tags = map[string]string{tagKey: tagValue}
		}
		err := s.validateCopy(req)
		if err != nil {
			if errdefs.Field(err) == "" || status.Code(errgrpc.ToGRPC(err)) != codes.InvalidArgument {
				t.Fatalf("refusal %v does not name a field as INVALID_ARGUMENT", err)
			}
			if len(err.Error()) > 2*input.MaxEcho+300 {
				t.Fatalf("refusal echoes %d bytes: %.300q", len(err.Error()), err.Error())
			}
			return
		}
		// Accepted: the promises the scheduler relies on hold.
		if !known[src] || !imageIDRe.MatchString(image) || len(req.DestinationRegions) == 0 {
			t.Fatalf("accepted a request with source %q image %q dests %q", src, image, dests)
		}
		seen := map[string]bool{}
		for _, d := range req.DestinationRegions {
			if !known[d] || d == src || seen[d] {
				t.Fatalf("accepted destination %q (source %q, list %q)", d, src, dests)
			}
			seen[d] = true
		}
		if kms != "" && !encrypted {
			t.Fatalf("accepted a KMS key without encryption")
		}
		for k, v := range req.Tags {
			if input.HasPrefixFold(k, "replicatord:") || k == "" || input.CheckControl(k) != nil || input.CheckControl(v) != nil {
				t.Fatalf("accepted tag %q=%q", k, v)
			}
		}
		if input.CheckControl(desc) != nil {
			t.Fatalf("accepted description %q", desc)
		}
		if requestID != "" && state.ValidRequestID(requestID) != nil {
			t.Fatalf("accepted request_id %q", requestID)
		}
	})
}
