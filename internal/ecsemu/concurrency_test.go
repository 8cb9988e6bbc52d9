package ecsemu_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func TestConcurrentClients(t *testing.T) {
	r := newRig(t, func(cfg *ecsemu.Config) { cfg.CopySlotsPerRegion = 3 })
	const workers, perWorker = 8, 40
	errs := make(chan error, workers*perWorker)
	ids := make(chan string, workers*perWorker)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				var p map[string]string
				if i%4 == 0 {
					p = r.c.signed("CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-beijing",
						"ClientToken", fmt.Sprintf("w%d-%d", w, i))
				} else {
					p = r.c.signed("DescribeImages", "RegionId", "cn-beijing", "Status", "Waiting,Creating,Available", "PageSize", "100")
				}
				status, body := r.c.send(p)
				if status != http.StatusOK {
					errs <- fmt.Errorf("%s: %d %s", p["Action"], status, body)
					continue
				}
				if p["Action"] == "CopyImage" {
					ids <- p["ClientToken"]
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := r.emu.Stats()
	want := int64(workers * perWorker / 4)
	if st.CopiesSubmitted["cn-beijing"] != want || st.Calls["CopyImage"]["200"] != want ||
		st.Copies["cn-beijing"]["Creating"] != 3 || st.Copies["cn-beijing"]["Waiting"] != int(want)-3 {
		t.Fatalf("after %d concurrent copies: submitted %v, copies %v", want, st.CopiesSubmitted, st.Copies)
	}
}

// BenchmarkDescribeImages measures one signed DescribeImages over real HTTP.
func BenchmarkDescribeImages(b *testing.B) {
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: fakeAt(), ThrottleRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	defer emu.Close()
	c := newClient(b, srv.URL, fakeAt())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if status, body := c.send(c.signed("DescribeImages", "RegionId", "cn-hangzhou", "PageSize", "100")); status != 200 {
			b.Fatalf("%d %s", status, body)
		}
	}
}

// BenchmarkCopyAndDescribeInProcess measures CopyImage plus a status read
// with a long queue (copies accumulate over the run), without HTTP.
func BenchmarkCopyAndDescribeInProcess(b *testing.B) {
	clk := fakeAt()
	emu, err := ecsemu.New(ecsemu.Config{Credentials: map[string]string{testKeyID: testSecret}, Clock: clk, ThrottleRate: -1, ImageQuotaPerRegion: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	c := newClient(b, "http://emulator", clk)
	do := func(p map[string]string) {
		req := httptest.NewRequest(http.MethodPost, "http://emulator/?"+query(p), nil)
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s: %d %s", p["Action"], rec.Code, rec.Body)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		do(c.signed("CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-beijing"))
		do(c.signed("DescribeImages", "RegionId", "cn-beijing", "Status", "Creating", "PageSize", "10"))
	}
}
