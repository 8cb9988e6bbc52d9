package scheduler

import (
	"context"
	"log/slog"

	"github.com/replicatord/replicatord/internal/job"
)

type jobKey struct{}

// withJob marks ctx as working for j, so that a failed ECS call is logged
// with the job and image it was for (call reads it back).
func withJob(ctx context.Context, j *job.Job) context.Context {
	return context.WithValue(ctx, jobKey{}, []any{
		slog.String("job", j.ID),
		slog.String("image", j.SourceImageID),
		slog.String("copy", j.DestinationImageID),
		slog.String("destination_region", j.DestinationRegion),
	})
}

// jobAttrs returns the log attributes withJob put in ctx, if any.
func jobAttrs(ctx context.Context) []any {
	a, _ := ctx.Value(jobKey{}).([]any)
	return a
}
