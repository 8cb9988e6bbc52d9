package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/cloud"
	"github.com/replicatord/replicatord/internal/cloud/aliyun"
	"github.com/replicatord/replicatord/internal/ecsemu"
)

// gatedProvider holds DescribeImages calls until release is closed, so
// that a test can pile lookups up behind the first one.
type gatedProvider struct {
	cloud.Provider
	release chan struct{}
}

func (g gatedProvider) DescribeImages(ctx context.Context, q cloud.ImageQuery) ([]cloud.Image, error) {
	<-g.release
	return g.Provider.DescribeImages(ctx, q)
}

// TestSourceLookupBatches: lookups that arrive while one is in flight go
// out together, 100 ids per DescribeImages call, and each caller gets its
// own answer (found and Available, found but not Available, not found).
func TestSourceLookupBatches(t *testing.T) {
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{"LTAIk": "s"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(emu)
	defer hs.Close()
	prov, err := aliyun.New(aliyun.Config{Endpoint: hs.URL, Insecure: true, Credentials: aliyun.Credentials{AccessKeyID: "LTAIk", AccessKeySecret: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	l := newSourceLookup(gatedProvider{prov, release})
	ctx := context.Background()

	const creating, deprecated = "m-bp1h6g4f2d0s8a7l5k3j", "m-bp1v5b3n1m9k7j5h3g1f"
	ids := []string{img20, creating, deprecated}
	for i := len(ids); i < 150; i++ {
		ids = append(ids, fmt.Sprintf("m-bp1missing%010d", i))
	}
	type answer struct {
		img cloud.Image
		ok  bool
		err error
	}
	answers := make([]answer, len(ids))
	var wg sync.WaitGroup
	first := make(chan answer, 1)
	wg.Add(1)
	go func() { // the leader: its call is held at the gate
		defer wg.Done()
		im, ok, err := l.lookup(ctx, "cn-hangzhou", img20)
		first <- answer{im, ok, err}
	}()
	waitPending(t, l, "cn-hangzhou", 0) // the leader's batch is out
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			im, ok, err := l.lookup(ctx, "cn-hangzhou", id)
			answers[i] = answer{im, ok, err}
		}()
	}
	waitPending(t, l, "cn-hangzhou", len(ids))
	close(release)
	wg.Wait()

	if a := <-first; a.err != nil || !a.ok || a.img.Status != cloud.StatusAvailable {
		t.Fatalf("leader's lookup: %+v", a)
	}
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("lookup %s: %v", ids[i], a.err)
		}
		switch id := ids[i]; {
		case id == img20:
			if !a.ok || a.img.Status != cloud.StatusAvailable {
				t.Errorf("%s: %+v, want Available", id, a)
			}
		case id == creating || id == deprecated:
			if !a.ok || a.img.Status == cloud.StatusAvailable {
				t.Errorf("%s: %+v, want found and not Available", id, a)
			}
		case a.ok:
			t.Errorf("%s: found %+v, want not found", id, a.img)
		}
	}
	// One call for the leader, then 150 ids in two calls of at most 100.
	if got := emu.Stats().Calls["DescribeImages"]["200"]; got != 3 {
		t.Errorf("DescribeImages calls = %d, want 3", got)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.regions) != 0 {
		t.Errorf("regions left after all lookups: %v", l.regions)
	}
}

// waitPending waits until n lookups of region wait behind a call in flight.
func waitPending(t *testing.T, l *sourceLookup, region string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		r := l.regions[region]
		got := -1
		if r != nil && r.busy {
			got = len(r.pending)
		}
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending lookups in %s: %d, want %d", region, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
