package main

import (
	"fmt"
	"strings"
	"time"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// plainLine is the one line printed per job change when stdout is not a
// terminal. Its first seven fields are fixed and space-separated, so it can
// be grepped and cut:
//
//	TIME JOB IMAGE SRC>DST STATE PERCENT% CLOUD [image=DEST-ID] [error=CODE: MESSAGE]
//
// TIME is the job's update_time in UTC (RFC 3339), PERCENT the progress
// ECS last reported (observed_progress_percent; never the daemon's
// estimate between polls, so a line says what was known at TIME), CLOUD
// the ECS status word or "-". The error, when present, is always last and runs to the end
// of the line.
func plainLine(j *replicatorv1.Job) string {
	t := "-"
	if ut := j.GetUpdateTime(); ut != nil {
		t = ut.AsTime().UTC().Format(time.RFC3339)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s>%s %s %d%% %s", t, field(j.GetId()), field(j.GetSourceImageId()),
		field(j.GetSourceRegion()), field(j.GetDestinationRegion()), stateName(j.GetState()),
		observedPercent(j), field(j.GetCloudStatus()))
	if id := j.GetDestinationImageId(); id != "" {
		b.WriteString(" image=" + field(id))
	}
	if e := jobError(j); e != "" {
		b.WriteString(" error=" + oneLine(e))
	}
	return b.String()
}
