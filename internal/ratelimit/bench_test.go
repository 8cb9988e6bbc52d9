package ratelimit

import (
	"context"
	"testing"
)

// BenchmarkLimiterWait measures the limiter's own cost: a rate so high that
// no call ever waits, on the real clock.
func BenchmarkLimiterWait(b *testing.B) {
	l := New(Options{Rate: 1e12, Burst: 1 << 30})
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Wait(ctx, "DescribeImages"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Wait(ctx, "DescribeImages"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
