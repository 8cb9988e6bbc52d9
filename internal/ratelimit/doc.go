// Package ratelimit paces calls to the cloud API: one token bucket per API
// action (CopyImage, DescribeImages, ...), whose rate adapts AIMD-style to the
// provider's flow control.
//
// ECS flow control is per action and per account: 1000 requests per 60 s for
// CopyImage and DescribeImages (docs/ecs-api.md, "Rate limits and
// throttling"). The default ceiling is 80% of that, so the daemon stays
// below the limit even with another client on the same account. Buckets
// are golang.org/x/time/rate limiters, created on first use of an action.
//
// When a call is throttled anyway, OnThrottle cuts that action's rate
// multiplicatively and empties its bucket, so the limiter does not answer a
// throttle with a burst. Calls already in flight when the limit was hit tend
// to come back throttled together; a Cooldown makes such a burst count as
// one decrease, and also holds off the recovery. After it, OnSuccess raises
// the rate additively, by Increase req/s for every second since the last
// adjustment, back to the configured ceiling; it never drops below MinRate.
// Recovery is paced by time, not by call count, so a slow action recovers as
// fast as a busy one.
//
// Every time comes from an injected clock.Clock: Wait reserves a token at
// clock.Now() with the x/time/rate *At/N methods and waits on that clock for
// the reservation, so tests drive the limiter with a clock.Fake.
package ratelimit
