package scheduler

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
	"github.com/replicatord/replicatord/internal/job"
)

// syncBuffer is a bytes.Buffer safe for the scheduler's workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) records(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.b.Bytes()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// A failed ECS call is logged with the job and image it was for, and the
// job's FAILED transition at WARN with the ECS code.
func TestFailureLogsNameJobImageAndCode(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := newHarness(t, ecsemu.Config{Images: images(300)}, Options{Logger: log})
	j := newJob(0, 300, "cn-shanghai") // above ECS's size limit: SizeExceed.Image
	h.submit(j)
	h.runUntil("failed", time.Second, 5, h.allTerminal([]string{j.ID}))

	var call, failed map[string]any
	for _, r := range buf.records(t) {
		switch {
		case r["msg"] == "ECS call failed" && r["action"] == "CopyImage":
			call = r
		case r["msg"] == "job transition" && r["to"] == job.StateFailed.String():
			failed = r
		}
	}
	if call == nil {
		t.Fatalf("no \"ECS call failed\" record for CopyImage:\n%s", buf.b.String())
	}
	for k, want := range map[string]any{"level": "WARN", "job": j.ID, "image": imageID(0), "destination_region": "cn-shanghai", "code": "SizeExceed.Image"} {
		if call[k] != want {
			t.Errorf("ECS call failed: %s = %v, want %v (record %v)", k, call[k], want, call)
		}
	}
	if failed == nil {
		t.Fatalf("no transition to FAILED logged:\n%s", buf.b.String())
	}
	for k, want := range map[string]any{"level": "WARN", "job": j.ID, "image": imageID(0), "code": "SizeExceed.Image"} {
		if failed[k] != want {
			t.Errorf("FAILED transition: %s = %v, want %v (record %v)", k, failed[k], want, failed)
		}
	}
	if failed["request_id"] == "" || failed["request_id"] == nil {
		t.Errorf("FAILED transition without the RequestId: %v", failed)
	}
}
