package main

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// stateName is a JobState without its enum prefix: COPYING.
func stateName(s replicatorv1.JobState) string {
	return strings.TrimPrefix(s.String(), "JOB_STATE_")
}

// parseStateFlag accepts "failed", "FAILED" or "JOB_STATE_FAILED".
func parseStateFlag(v string) (replicatorv1.JobState, bool) {
	u := strings.ToUpper(strings.TrimSpace(v))
	u = strings.TrimPrefix(u, "JOB_STATE_")
	s, ok := replicatorv1.JobState_value["JOB_STATE_"+u]
	if !ok || s == 0 {
		return 0, false
	}
	return replicatorv1.JobState(s), true
}

func terminal(s replicatorv1.JobState) bool {
	return s == replicatorv1.JobState_JOB_STATE_SUCCEEDED ||
		s == replicatorv1.JobState_JOB_STATE_FAILED ||
		s == replicatorv1.JobState_JOB_STATE_CANCELLED
}

// shortDuration prints d the way kubectl prints ages: 45s, 3m10s, 2h05m, 3d4h.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch s := int64(d.Round(time.Second) / time.Second); {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 10*60:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 24*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}

// age is the time since t, "-" when t is unset.
func age(now time.Time, t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return shortDuration(now.Sub(t.AsTime()))
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// pad left-aligns s in n runes (no truncation).
func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jobError renders a job's error as "Code: message".
func jobError(j *replicatorv1.Job) string {
	e := j.GetError()
	if e == nil || (e.Code == "" && e.Message == "") {
		return ""
	}
	switch {
	case e.Code == "":
		return e.Message
	case e.Message == "":
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// oneLine replaces newlines so a message never breaks a table or line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func imageLabel(id, name string) string {
	if name == "" {
		return id
	}
	return id + " (" + name + ")"
}
