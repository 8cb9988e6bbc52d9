package main

import (
	"strings"
	"testing"
	"unicode"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// Whatever the daemon or ECS sends, a live-view line fits the terminal (so
// the in-place redraw stays aligned) and carries no control characters (so
// a crafted image name cannot drive the user's terminal).
func FuzzRenderFrame(f *testing.F) {
	f.Add("ubuntu", "cn-shanghai", "Creating", "QuotaExceed", "quota exceeded", "nightly", 80, int32(45))
	f.Add("金山云镜像-生产环境", "cn-hangzhou", "Waiting", "", "", "", 40, int32(0))
	f.Add("evil\x1b[2J\x1b]0;pwned\x07", "r\n1", "C\treating", "E\x00", "line1\nline2", "p\x1b", 13, int32(150))
	f.Fuzz(func(t *testing.T, name, region, cloud, code, msg, policy string, width int, pct int32) {
		width = 8 + abs(width)%200
		tr := newTracker()
		for i, st := range []replicatorv1.JobState{stCopying, stFailed, stQueued, stSucceeded} {
			j := sampleJob("j-"+string(rune('a'+i)), region, st, pct)
			j.SourceImageName, j.CloudStatus, j.Policy = name, cloud, policy
			if st == stFailed {
				j.Error = &replicatorv1.JobError{Code: code, Message: msg}
			}
			tr.update(j, testNow)
		}
		for _, by := range []string{groupByPolicy, groupByImage} {
			lines := renderFrame(tr.list(), testNow, viewOptions{width: width, height: 6, groupBy: by, status: msg})
			for _, l := range lines {
				if w := displayWidth(l); w > width-1 {
					t.Fatalf("line of %d columns in a %d-column terminal: %q", w, width, l)
				}
				if strings.IndexFunc(l, unicode.IsControl) >= 0 {
					t.Fatalf("control character in %q", l)
				}
			}
			if len(lines) > 5 {
				t.Fatalf("%d lines on a 6-row terminal", len(lines))
			}
		}
		pl := plainLine(tr.jobs["j-a"].job)
		if strings.ContainsAny(pl, "\n\r\x1b") || len(strings.Fields(pl)) < 7 {
			t.Fatalf("plain line broken: %q", pl)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n = -n; n < 0 { // math.MinInt
			return 0
		}
	}
	return n
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"unix:///a.sock", "unix://rel.sock", "unix:x", "127.0.0.1:7070", "[::1]:1", "http://x", "", ":1", "h:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseAddress(s)
		if err != nil {
			if !strings.Contains(err.Error(), "want unix:///abs/path.sock") {
				t.Fatalf("error without the accepted forms: %v", err)
			}
			return
		}
		if tg.unix == (tg.host != "") || (tg.unix && tg.path == "") {
			t.Fatalf("parseAddress(%q) = %+v", s, tg)
		}
	})
}

func TestWideCharacters(t *testing.T) {
	if displayWidth("镜像a") != 5 || truncate("生产环境镜像", 7) != "生产环…" || pad("镜", 4) != "镜  " {
		t.Errorf("width: %d %q %q", displayWidth("镜像a"), truncate("生产环境镜像", 7), pad("镜", 4))
	}
}

func BenchmarkRenderFrame1000Jobs(b *testing.B) {
	tr := newTracker()
	regions := []string{"cn-shanghai", "cn-beijing", "ap-southeast-1", "eu-central-1", "us-west-1"}
	states := []replicatorv1.JobState{stQueued, stWaiting, stCopying, stSucceeded, stSucceeded, stFailed}
	for i := range 1000 {
		j := sampleJob("j-"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), regions[i%5], states[i%6], int32(i%100))
		j.Policy = []string{"", "nightly", "weekly"}[i%3]
		j.SourceImageId = "m-" + string(rune('a'+i%40))
		tr.update(j, testNow)
	}
	jobs := tr.list()
	b.ResetTimer()
	for b.Loop() {
		renderFrame(jobs, testNow, viewOptions{width: 120, height: 50})
	}
}
