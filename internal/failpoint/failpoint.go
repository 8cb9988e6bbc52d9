// Package failpoint kills the process at named points, so that crash tests
// can SIGKILL the real daemon at exact moments of a copy's life (before
// CopyImage is sent, after ECS accepted it but before the answer is stored,
// ...), as etcd's gofail markers and containerd's failpoints do.
//
// It is inert unless the environment variable REPLICATORD_FAILPOINTS names
// points when the process starts: a comma-separated list of NAME or NAME@N
// (fire on the Nth hit, counting from 1). A hit that fires sends SIGKILL to
// the process itself: nothing is flushed, nothing deferred runs.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvVar names the points to arm.
const EnvVar = "REPLICATORD_FAILPOINTS"

var (
	mu    sync.Mutex
	armed = parse(os.Getenv(EnvVar))
	hits  = map[string]int{}
	// kill is replaced in tests.
	kill = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
)

func parse(spec string) map[string]int {
	m := map[string]int{}
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
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
	mu.Unlock()
	if ok {
		kill()
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
