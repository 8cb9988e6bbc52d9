// Package failpoint kills the process at named points, so that crash tests
// can SIGKILL the real daemon at exact moments of a copy's life (before
// CopyImage is sent, after ECS accepted it but before the answer is stored,
// ...), as etcd's gofail markers and containerd's failpoints do.
//
// It is inert unless the environment variable REPLICATORD_FAILPOINTS names
// points when the process starts: a comma-separated list of NAME or NAME@N
// (fire on the Nth hit, counting from 1). A hit that fires sends SIGKILL to
// the process itself: nothing is flushed, nothing deferred runs.
//
// NAME=pause (or NAME@N=pause) pauses instead of killing, so that a test
// can order a race: the process creates NAME.reached in the directory
// REPLICATORD_FAILPOINT_DIR and waits until the test creates NAME.release
// there (without that directory, a pause point is ignored).
package failpoint

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvVar names the points to arm; DirEnvVar is where pause points meet
// the test.
const (
	EnvVar    = "REPLICATORD_FAILPOINTS"
	DirEnvVar = "REPLICATORD_FAILPOINT_DIR"
)

var (
	mu     sync.Mutex
	armed  = parse(os.Getenv(EnvVar))
	paused = parsePauses(os.Getenv(EnvVar))
	hits   = map[string]int{}
	// kill is replaced in tests.
	kill = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
)

// parsePauses returns the names armed with =pause.
func parsePauses(spec string) map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		if name, ok := strings.CutSuffix(p, "=pause"); ok {
			if i := strings.IndexByte(name, '@'); i > 0 {
				name = name[:i]
			}
			m[name] = true
		}
	}
	return m
}

func parse(spec string) map[string]int {
	m := map[string]int{}
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		p = strings.TrimSuffix(p, "=pause")
		if p == "" {
			continue
		}
		name, nth := p, 1
		if i := strings.IndexByte(p, '@'); i > 0 {
			if n, err := strconv.Atoi(p[i+1:]); err == nil && n > 0 {
				name, nth = p[:i], n
			}
		}
		m[name] = nth
	}
	return m
}

// Hit marks that the process reached the point name; if the point is armed
// and this is its Nth hit, the process dies here.
func Hit(name string) {
	if len(armed) == 0 {
		return
	}
	mu.Lock()
	nth, ok := armed[name]
	if ok {
		hits[name]++
		ok = hits[name] == nth
	}
	pause := paused[name]
	mu.Unlock()
	switch {
	case ok && pause:
		wait(name)
	case ok:
		kill()
	}
}

// wait announces that the process reached name and waits for the release.
func wait(name string) {
	dir := os.Getenv(DirEnvVar)
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".reached"), nil, 0o600); err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, name+".release")); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Points the scheduler marks.
const (
	BeforeCopyImage       = "before-copyimage"
	AfterCopyImage        = "after-copyimage"
	WhileCreating         = "while-creating"
	BeforeCancelCopyImage = "before-cancelcopyimage"
	AfterCancelCopyImage  = "after-cancelcopyimage"
)

// Points the reconciler marks.
const (
	// ReconcileAfterList: a policy run listed the copies and has not read
	// the jobs yet.
	ReconcileAfterList = "reconcile-after-list"
)
