package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/policy"
	"github.com/replicatord/replicatord/internal/server"
)

// The start survives cloud outages. The daemon asks the cloud once while
// checking its configuration (so unknown regions are config errors, found
// before anything is on disk); if the cloud does not answer (credentials,
// network, ECS itself), it starts anyway: it serves the API with health
// NOT_SERVING and the reason (GetStatus), refuses what needs region names
// (Copy, policy loads) with UNAVAILABLE, and asks again with capped backoff.
// Once the cloud answers, the file's regions are checked (an unknown one is
// a config error: exit 2, as at start), copies of a lost state file are
// adopted, the policies start and health turns SERVING.

// Backoff of the readiness probe.
var (
	probeFirstRetry = time.Second
	probeMaxRetry   = 30 * time.Second
	probeTimeout    = 30 * time.Second
)

// probeCloud checks the credentials and loads the region list. On success
// the daemon can check region names; on failure the reason is kept for
// health and GetStatus.
func (d *daemon) probeCloud(ctx context.Context) error {
	err := d.provider.CheckCredentials()
	if err == nil {
		d.log.Info("cloud credentials", "key", d.provider.CredentialsInUse())
		cctx, cancel := context.WithTimeout(ctx, probeTimeout)
		var regions []string
		rs, rerr := d.provider.DescribeRegions(cctx)
		cancel()
		err = rerr
		for _, r := range rs {
			regions = append(regions, r.ID)
		}
		if err == nil && len(regions) == 0 {
			err = errors.New("DescribeRegions returned no region")
		}
		if err == nil {
			d.setRegions(regions)
			return nil
		}
	}
	reason := fmt.Errorf("the cloud does not answer: %w", err)
	d.mu.Lock()
	d.notReady = reason
	d.mu.Unlock()
	return reason
}

// setRegions records the regions the account can use.
func (d *daemon) setRegions(regions []string) {
	m := make(map[string]bool, len(regions))
	for _, r := range regions {
		m[r] = true
	}
	d.mu.Lock()
	d.regions = m
	d.mu.Unlock()
}

// cloudErr is why the daemon is not ready (nil when it is).
func (d *daemon) cloudErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.notReady
}

// cloudReady is server.Options.CloudReady.
func (d *daemon) cloudReady() error {
	if err := d.cloudErr(); err != nil {
		return fmt.Errorf("%v; retrying: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}

func (d *daemon) knownRegions() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.regions
}

// markReady makes the daemon ready: requests that name regions are served
// and health turns SERVING (status and health change together).
func (d *daemon) markReady() {
	d.mu.Lock()
	d.notReady = nil
	d.mu.Unlock()
	d.setHealth(true)
}

// setHealth sets the gRPC health of the server and of the service.
func (d *daemon) setHealth(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	d.health.SetServingStatus("", st)
	d.health.SetServingStatus("replicator.v1.ReplicatorService", st)
}

// waitForCloud asks the cloud again, with capped backoff, until it answers,
// then makes the daemon ready. Health is NOT_SERVING meanwhile.
func (d *daemon) waitForCloud(fresh bool) {
	d.setHealth(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.closers = append(d.closers, func() { cancel(); <-done })
	go func() {
		defer close(done)
		delay := probeFirstRetry
		for {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			err := d.probeCloud(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				d.log.Info("the cloud answers", "regions", len(d.knownRegions()))
				if err := d.checkLoaded(); err != nil {
					d.failed <- err
					return
				}
				d.activate(ctx, fresh)
				d.markReady()
				d.log.Info("SERVING")
				return
			}
			delay = min(2*delay, probeMaxRetry)
			d.log.Warn("the cloud still does not answer; NOT_SERVING", "reason", err.Error(), "retry_in", delay)
		}
	}()
}

// checkLoaded checks the loaded file's regions once the cloud answered
// after the start. An unknown region found only now is a config error, as
// it would have been at start: a *usageError (exit 2).
func (d *daemon) checkLoaded() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.file.ValidateEnv(d.env())
	if err == nil {
		return nil
	}
	err = fmt.Errorf("config %s (checked once the cloud answered):\n%w", d.fl.config, err)
	d.mu.Lock()
	d.notReady = err
	d.mu.Unlock()
	return &usageError{err}
}

// activate adopts the copies of a lost state file and starts the file's
// policies, whose regions are known to be good.
func (d *daemon) activate(ctx context.Context, fresh bool) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if fresh {
		d.adopt(ctx, d.sched)
	}
	d.rec.SetPolicies(d.file)
	d.log.Info("policies loaded", "file", d.fl.config, "policies", len(d.file.Policies))
	if d.ha != nil {
		// With etcd the policies run on the leader: stand now that the
		// cloud answers.
		d.campaign()
	}
}

// noteReach records whether a call reached ECS, for GetStatus: any answer
// from ECS counts; failing to get one (network, timeout, credentials) not.
func (d *daemon) noteReach(c aliyun.Call) {
	reached := c.Err == nil
	if c.Err != nil {
		switch c.Code {
		case aliyun.CodeTransport, aliyun.CodeTimeout, aliyun.CodeCredentials, "":
		default:
			reached = true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if reached {
		d.reached = time.Now()
		d.lastErr = ""
	} else if c.Err != nil && !errors.Is(c.Err, context.Canceled) {
		d.lastErr = c.Err.Error()
	}
}

// status is server.Options.Status.
func (d *daemon) status() server.Status {
	d.mu.Lock()
	st := server.Status{
		Version:   version(),
		Serving:   d.notReady == nil,
		StartTime: d.started,
		Cloud: server.CloudStatus{
			Provider:    d.cloudCfg.Provider,
			Network:     d.cloudCfg.Network,
			Reachable:   d.lastErr == "" && !d.reached.IsZero(),
			LastError:   d.lastErr,
			LastReached: d.reached,
			Regions:     len(d.regions),
		},
		Store: d.storeStatus(),
	}
	if d.notReady != nil {
		st.Reason = d.notReady.Error()
	}
	d.mu.Unlock()
	if st.Cloud.Network == "" {
		st.Cloud.Network = policy.NetworkPublic
	}
	region := d.cloudCfg.Region
	if region == "" {
		region = aliyun.DefaultRegion
	}
	st.Cloud.Endpoint = d.provider.Endpoint(region)
	st.Cloud.Credentials = d.provider.CredentialsInUse()
	d.members(&st)
	return st
}
