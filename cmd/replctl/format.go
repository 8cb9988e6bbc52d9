package main

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"

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
		s == replicatorv1.JobState_JOB_STATE_CANCELLED ||
		s == replicatorv1.JobState_JOB_STATE_PRUNED
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

// runeWidth is the number of terminal columns r takes: 2 for East Asian
// wide and full-width characters (ECS image names may be Chinese), 0 for
// combining marks, 1 otherwise.
func runeWidth(r rune) int {
	switch {
	case r < 0x300: // Latin, the common case: no wide or combining runes
		return 1
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// displayWidth is the number of terminal columns s takes.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// truncate shortens s to at most n columns, marking the cut with "…".
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if displayWidth(s) <= n {
		return s
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := runeWidth(r)
		if w+rw > n-1 {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	return b.String() + "…"
}

// pad left-aligns s in n columns (no truncation).
func pad(s string, n int) string {
	if c := displayWidth(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

// clean makes text from the daemon or from ECS safe to print: control
// characters (an escape sequence in an image name or error message could
// drive the user's terminal) become "?", runs of white space one space.
func clean(s string) string {
	return strings.Join(strings.Fields(safe(s)), " ")
}

// safe replaces control characters other than white space with "?".
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// field makes s one space-free field of a plain line ("-" when empty).
func field(s string) string {
	return dash(strings.ReplaceAll(clean(s), " ", "_"))
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

// oneLine makes s safe to print on one line of a table or view.
func oneLine(s string) string { return clean(s) }

func imageLabel(id, name string) string {
	if name == "" {
		return id
	}
	return id + " (" + name + ")"
}
