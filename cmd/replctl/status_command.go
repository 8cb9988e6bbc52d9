package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
)

func newStatusCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's version, health, cloud reachability and store",
		Long: `status asks the daemon how it is: its version, whether it is SERVING (and
why not: a daemon that started while ECS was unreachable serves the API but
refuses requests that name regions until the cloud answers), whether its last
call reached ECS, and where its store is. With the etcd store it also lists
the replicas sharing it, which one leads, and warns when they run different
policy files. It never calls the cloud itself.`,
		Example: `  replctl status
  replctl status -o json | jq -r .status`,
		Args: argsUsage(cobra.NoArgs),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			client, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := a.unary(cmd.Context())
			defer cancel()
			resp, err := client.GetStatus(ctx, &replicatorv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			if a.g.output != "table" {
				return printMessage(a.stdout, a.g.output, resp)
			}
			return printStatus(a.stdout, a.now(), a.g.address, resp)
		}),
	}
}

// printStatus renders GetStatus as labelled lines.
func printStatus(w io.Writer, now time.Time, address string, s *replicatorv1.GetStatusResponse) error {
	health := "SERVING"
	if s.GetStatus() != replicatorv1.ServingStatus_SERVING_STATUS_SERVING {
		health = "NOT_SERVING"
		if r := clean(s.GetReason()); r != "" {
			health += ": " + r
		}
	}
	c := s.GetCloud()
	cloud := fmt.Sprintf("%s, %s endpoints, region list from %s", dash(clean(c.GetProvider())), dash(clean(c.GetNetwork())), dash(clean(c.GetEndpoint())))
	reach := "not reached yet"
	switch {
	case c.GetReachable():
		reach = fmt.Sprintf("reachable (last answer %s ago), %d regions", age(now, c.GetLastReachedTime()), c.GetRegions())
	case c.GetLastError() != "":
		reach = "UNREACHABLE: " + clean(c.GetLastError())
		if c.GetLastReachedTime() != nil {
			reach += fmt.Sprintf(" (last answer %s ago)", age(now, c.GetLastReachedTime()))
		}
	}
	st := s.GetStore()
	lines := [][2]string{
		{"daemon", fmt.Sprintf("replicatord %s at %s", dash(clean(s.GetVersion())), clean(address))},
		{"health", health},
		{"started", startedLine(now, s)},
		{"cloud", cloud},
		{"", reach},
		{"", "credentials " + dash(clean(c.GetCredentials()))},
		{"store", fmt.Sprintf("%s %s (revision %d)", dash(clean(st.GetBackend())), dash(clean(st.GetPath())), st.GetRevision())},
	}
	lines = append(lines, memberLines(now, s)...)
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%-8s %s\n", l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}

// memberLines are the leader, one line per member and a warning when the
// members run different policy files (which policies run then depends on
// which one leads).
func memberLines(now time.Time, s *replicatorv1.GetStatusResponse) [][2]string {
	var lines [][2]string
	if s.GetLeader() != "" || len(s.GetMembers()) > 0 || s.GetMembersError() != "" {
		leader := clean(s.GetLeader())
		if leader == "" {
			leader = "NONE (an election is under way)"
		}
		lines = append(lines, [2]string{"leader", leader})
	}
	if e := clean(s.GetMembersError()); e != "" {
		lines = append(lines, [2]string{"members", "UNKNOWN: " + e})
	}
	hashes := map[string]bool{}
	for _, m := range s.GetMembers() {
		started := "-"
		if m.GetStartTime() != nil {
			started = "up " + age(now, m.GetStartTime())
		}
		h := clean(m.GetConfigHash())
		hashes[h] = true
		if len(h) > 12 {
			h = h[:12]
		}
		lines = append(lines, [2]string{"member", fmt.Sprintf("%s %s at %s, %s, config %s, %s", dash(clean(m.GetId())), dash(clean(m.GetRole())),
			dash(clean(m.GetAddress())), dash(clean(m.GetVersion())), dash(h), started)})
	}
	if len(hashes) > 1 {
		lines = append(lines, [2]string{"WARNING", fmt.Sprintf("the members run %d different policy files (config hashes differ): the policies that run depend on which one leads; deploy one file to every replica", len(hashes))})
	}
	return lines
}

func startedLine(now time.Time, s *replicatorv1.GetStatusResponse) string {
	if s.GetStartTime() == nil {
		return "-"
	}
	return s.GetStartTime().AsTime().UTC().Format(time.RFC3339) + " (" + age(now, s.GetStartTime()) + " ago)"
}

// daemonAnswers tells an UNAVAILABLE the daemon sent (it is up, but the
// cloud is not reachable, or it is stopping) from one gRPC made up because
// the daemon could not be reached: it asks the health service, which
// answers whatever the cloud does. It returns the daemon's reason for not
// serving, if any, and whether the daemon answered.
func daemonAnswers(ctx context.Context, conn *grpc.ClientConn) (reason string, up bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return "", false
	}
	if st, err := replicatorv1.NewReplicatorServiceClient(conn).GetStatus(ctx, &replicatorv1.GetStatusRequest{}); err == nil {
		reason = st.GetReason()
	}
	return reason, true
}

// explainUnavailable rewrites an UNAVAILABLE from a daemon that is up, so
// that replctl does not ask "is the daemon running?" when it is the cloud
// that is down.
func (a *app) explainUnavailable(ctx context.Context, err error) error {
	var re *runError
	if !errors.As(err, &re) || a.conn == nil || ctx.Err() != nil {
		return err
	}
	native := errgrpc.ToNative(re.err)
	if !errgrpc.IsStatus(native) || !errors.Is(native, errdefs.ErrUnavailable) {
		return err
	}
	reason, up := daemonAnswers(ctx, a.conn)
	if !up {
		return err
	}
	msg := "replicatord is running but cannot serve this now: " + clean(native.Error())
	if reason != "" && reason != native.Error() {
		msg += " (daemon status: " + clean(reason) + ")"
	}
	msg += "; `replctl status` shows why"
	return &runError{&exitError{code: exitRPCBase + int(errgrpc.Code(native)), msg: msg}}
}
