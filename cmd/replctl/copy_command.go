package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/errdefs"
	"github.com/replicatord/replicatord/internal/errgrpc"
	"github.com/replicatord/replicatord/internal/input"
)

func newCopyCommand(a *app) *cobra.Command {
	var (
		from, name, description, kmsKey, groupBy, requestID string
		to, tags                                            []string
		encrypted, detach, force                            bool
		priority                                            int32
	)
	cmd := &cobra.Command{
		Use:   "copy IMAGE --from REGION --to REGION[,REGION...]",
		Short: "Copy a custom image to other regions and follow the copies",
		Long: `copy creates one job per destination region and follows them until they are
all finished: a live view in a terminal, one plain line per change otherwise,
protojson lines with -o json.

The copies run in the daemon: interrupting replctl (Ctrl-C, exit 130) does not
stop them; follow them again with 'replctl watch --job ID'.

A destination that already has a job of this image (and of --name, when
given) that SUCCEEDED or is still running — made by an earlier copy or by a
policy — is answered with that job: no second copy is made, and replctl says
so. --force makes a new copy anyway.

Every invocation sends a request id (random, or --request-id) and sends the
same id again when it retries after losing the daemon, so a retry never makes
a second copy. Reusing an id with other parameters is refused (exit 16).

Exit code: 0 when every job SUCCEEDED, 1 when any FAILED, 3 when none failed
but some were CANCELLED. With --detach, replctl returns once ECS accepted every
copy, with 0 unless a job already failed.`,
		Example: `  # Copy to two regions and watch the live view
  replctl copy m-bp1abc --from cn-hangzhou --to cn-shanghai,cn-beijing

  # Encrypted copy with a name and tags, returning once ECS accepted it
  replctl copy m-bp1abc --from cn-hangzhou --to eu-central-1 --name web-v42 \
      --encrypted --kms-key key-123 --tag team=web --tag env=prod --detach

  # In a script: one JSON line per change, and the exit code tells the result
  replctl copy m-bp1abc --from cn-hangzhou --to cn-shanghai -o json > copy.log

  # A pipeline step that may run twice: the id makes the second run a no-op
  replctl copy m-bp1abc --from cn-hangzhou --to cn-shanghai --request-id "build-$BUILD_ID"

  # A second copy even though one exists there
  replctl copy m-bp1abc --from cn-hangzhou --to cn-shanghai --force`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req := &replicatorv1.CopyRequest{
				SourceRegion:           from,
				SourceImageId:          args[0],
				DestinationRegions:     splitList(to),
				DestinationImageName:   name,
				DestinationDescription: description,
				Encrypted:              encrypted,
				KmsKeyId:               kmsKey,
				Detach:                 detach,
				AllowDuplicate:         force,
				RequestId:              requestID,
				Priority:               priority,
			}
			if requestID != "" {
				if err := input.CheckRequestID(requestID); err != nil {
					return usagef("bad --request-id %s: %v", input.Quote(requestID), err)
				}
			} else {
				req.RequestId = newRequestID()
			}
			if len(req.DestinationRegions) == 0 {
				return usagef("--to: give at least one destination region")
			}
			if kmsKey != "" && !encrypted {
				return usagef("--kms-key needs --encrypted")
			}
			if err := checkGroupBy(groupBy); err != nil {
				return err
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			req.Tags = t
			return a.copy(cmd.Context(), req, groupBy)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source region of the image (required)")
	f.StringSliceVar(&to, "to", nil, "destination regions, comma-separated or repeated (required)")
	f.StringVar(&name, "name", "", "name of the copies (ECS picks one when empty)")
	f.StringVar(&description, "description", "", "description of the copies")
	f.BoolVar(&encrypted, "encrypted", false, "encrypt the copies")
	f.StringVar(&kmsKey, "kms-key", "", "KMS key id for --encrypted (the default key when empty)")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE on the copies (repeatable)")
	f.BoolVar(&detach, "detach", false, "return once ECS accepted every copy instead of following them")
	f.StringVar(&groupBy, "group-by", groupByImage, "live view grouping: policy or image")
	f.Int32Var(&priority, "priority", 0, "queue order among ad-hoc copies to the same region, -1000 to 1000: higher goes first, and one that outranks copies ECS holds Waiting is sent at once")
	f.BoolVar(&force, "force", false, "make a new copy even where a job of this image already succeeded or runs")
	f.StringVar(&requestID, "request-id", "", "request id (1-64 printable ASCII, no spaces); the same id with the same flags returns the same jobs (default: random per invocation)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// parseTags parses repeated KEY=VALUE flags.
func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("bad --tag %s: want KEY=VALUE", input.Quote(t))
		}
		if _, dup := out[k]; dup {
			return nil, usagef("bad --tag %s: key %s given twice", input.Quote(t), input.Quote(k))
		}
		out[k] = v
	}
	return out, nil
}

func checkGroupBy(v string) error {
	if v != groupByPolicy && v != groupByImage {
		return usagef("bad --group-by %s: want policy or image", input.Quote(v))
	}
	return nil
}

// Bounded retry of a Copy that could not reach the daemon before any job
// was seen. The request id makes it safe: a first call that did reach the
// daemon is replayed, not repeated.
var (
	copyAttempts = 4
	copyRetryMin = 250 * time.Millisecond
)

// newRequestID returns a random request id for one invocation.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return "replctl-" + hex.EncodeToString(b[:])
}

// copy runs Copy and follows its jobs. A Copy that fails UNAVAILABLE before
// any job arrived is sent again, with the same request id, a few times. If
// the stream breaks after jobs arrived, it follows them with Watch instead.
func (a *app) copy(ctx context.Context, req *replicatorv1.CopyRequest, groupBy string) error {
	client, err := a.client(ctx)
	if err != nil {
		return err
	}
	tr := newTracker()
	f := &follower{a: a, tr: tr, out: a.newSink(tr, groupBy, "submitting copy…")}
	defer f.out.close()

	open := func(ctx context.Context) (func() (proto.Message, error), error) {
		stream, err := client.Copy(ctx, req)
		if err != nil {
			return nil, err
		}
		return recvOf(stream), nil
	}
	existing := map[string]string{} // job id -> destination region
	noted := false
	handle := func(m proto.Message) (bool, error) {
		r := m.(*replicatorv1.CopyResponse)
		j := r.GetJob()
		f.saw(r.GetRevision(), j.GetId())
		if r.GetReplayed() && !noted {
			noted = true
			f.out.note("request id " + req.GetRequestId() + " was answered before: following its jobs, nothing new is copied")
		}
		if r.GetOutcome() == replicatorv1.CopyOutcome_COPY_OUTCOME_EXISTING && existing[j.GetId()] == "" {
			existing[j.GetId()] = j.GetDestinationRegion()
			f.out.note(existingNote(existing))
		}
		return false, f.show(r, j)
	}
	backoff := copyRetryMin
	for attempt := 1; ; attempt++ {
		err = errgrpc.ToNative(f.pump(ctx, open, handle))
		if len(tr.jobs) > 0 || !errors.Is(err, errdefs.ErrUnavailable) || attempt >= copyAttempts || ctx.Err() != nil {
			break
		}
		if _, up := daemonAnswers(ctx, a.conn); up {
			break // the daemon is up and said UNAVAILABLE: the cloud is down, a quick retry will not help
		}
		f.out.note(fmt.Sprintf("daemon unavailable (%s); sending the copy again with request id %s (attempt %d of %d)",
			input.Clip(err.Error()), req.GetRequestId(), attempt+1, copyAttempts))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff *= 2
	}
	switch {
	case errors.Is(err, io.EOF) && req.GetDetach(), err != nil && tr.allTerminal():
		// Done; a stream cut after the last job finished loses nothing.
		err = nil
	case ctx.Err() != nil:
	case len(tr.jobs) > 0 && !req.GetDetach() &&
		(errors.Is(err, io.EOF) || errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, errdefs.ErrInternal)):
		f.out.note("connection lost; following the jobs with watch")
		err = f.watch(ctx, client, &replicatorv1.WatchRequest{JobIds: tr.ids(), FromRevision: f.rev}, tr.allTerminal, true)
	}
	if ctx.Err() != nil && len(tr.jobs) > 0 {
		return &exitError{code: exitInterrupted, msg: "interrupted; the copies go on in replicatord, follow them with: replctl watch --job " +
			strings.Join(tr.ids(), " --job ")}
	}
	if err != nil {
		return err
	}
	if err := f.out.close(); err != nil {
		return err
	}
	if req.GetDetach() && a.g.output == "table" {
		fmt.Fprintf(a.stderr, "detached; follow the copies with: replctl watch --job %s\n", strings.Join(tr.ids(), " --job "))
	}
	return copyResult(tr)
}

// copyResult turns the final job states into the exit code.
// existingNote tells which destinations were answered by existing jobs.
func existingNote(existing map[string]string) string {
	var parts []string
	for id, region := range existing {
		parts = append(parts, region+" "+id)
	}
	slices.Sort(parts)
	return "existing job answers " + strings.Join(parts, ", ") + " (it already copies or copied this image there; no new copy; --force makes one)"
}

func copyResult(tr *tracker) error {
	n := len(tr.jobs)
	if failed := tr.count(replicatorv1.JobState_JOB_STATE_FAILED); failed > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d of %d copies failed", failed, n)}
	}
	if c := tr.count(replicatorv1.JobState_JOB_STATE_CANCELLED); c > 0 {
		return &exitError{code: exitCancelled, msg: fmt.Sprintf("%d of %d copies were cancelled", c, n)}
	}
	return nil
}
