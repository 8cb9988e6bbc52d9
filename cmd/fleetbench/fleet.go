package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

// sourceRegion holds every source image of the fleet.
const sourceRegion = "cn-hangzhou"

// allDestinations are the destination regions, in the order --regions takes
// a prefix of them.
var allDestinations = []string{"cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1", "eu-central-1", "us-west-1"}

// fleetImage is one source image.
type fleetImage struct {
	ID      string
	Name    string
	SizeGiB int64
}

// fleet is what is copied and how ECS times it.
type fleet struct {
	Images       []fleetImage
	Regions      []string
	Slots        int
	RateMiBps    float64
	Startup      time.Duration // emulated
	CopyConflict bool
	// FailRate is the share of copies ECS ends CreateFailed.
	FailRate float64
	// Urgent, if set, is a source image outside the fleet, copied once to
	// Regions[0] as an urgent ad-hoc copy halfway through (at half the
	// fleet's own lower bound, emulated).
	Urgent *fleetImage
}

// urgentImage is the source of the urgent ad-hoc copy: not in the fleet,
// so that its copy is a new job rather than a duplicate of a fleet copy.
var urgentImage = fleetImage{ID: "m-bp1urgentimage000001", Name: "urgent-image", SizeGiB: 40}

// sizes is every source image's size by id, the urgent one included.
func (f *fleet) sizes() map[string]int64 {
	size := map[string]int64{}
	for _, im := range f.Images {
		size[im.ID] = im.SizeGiB
	}
	if f.Urgent != nil {
		size[f.Urgent.ID] = f.Urgent.SizeGiB
	}
	return size
}

// sizeClasses is the mix of image sizes: many small OS images, fewer
// application images, some data-carrying ones and a few large ones. The
// shares are a guess at a typical estate, not a measurement.
var sizeClasses = []struct {
	share    float64
	min, max int64 // GiB, inclusive
}{
	{0.40, 20, 40},   // base OS images
	{0.30, 40, 80},   // application images
	{0.20, 80, 140},  // images with data disks
	{0.10, 140, 180}, // large images, still under ECS's 200 GiB copy limit
}

// newFleet builds n images deterministically from seed.
func newFleet(n int, seed uint64) []fleetImage {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyz"
	seen := map[string]bool{}
	out := make([]fleetImage, 0, n)
	for i := 0; i < n; i++ {
		x, size := rng.Float64(), int64(0)
		for _, c := range sizeClasses {
			if x < c.share || c == sizeClasses[len(sizeClasses)-1] {
				size = c.min + rng.Int64N(c.max-c.min+1)
				break
			}
			x -= c.share
		}
		var id string
		for id == "" || seen[id] {
			b := []byte("m-bp1")
			for len(b) < 22 {
				b = append(b, alnum[rng.IntN(len(alnum))])
			}
			id = string(b)
		}
		seen[id] = true
		out = append(out, fleetImage{ID: id, Name: fmt.Sprintf("fleet-image-%04d", i+1), SizeGiB: size})
	}
	return out
}

// fixtures turns the fleet into emulator fixtures, all Available in the
// source region.
func (f *fleet) fixtures() []ecsemu.FixtureImage {
	created := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	images := f.Images
	if f.Urgent != nil {
		images = append(slices.Clone(images), *f.Urgent)
	}
	out := make([]ecsemu.FixtureImage, len(images))
	for i, im := range images {
		out[i] = ecsemu.FixtureImage{
			Region: sourceRegion, ID: im.ID, Name: im.Name, SizeGiB: im.SizeGiB, Status: "Available",
			Tags: map[string]string{"fleet": "bench"}, CreationTime: created.Add(time.Duration(i) * time.Minute),
		}
	}
	return out
}

// duration is how long ECS takes to copy an image once it holds a slot, in
// emulated time: the start-up delay plus the transfer at the copy rate, the
// same formula as the emulator's (internal/ecsemu startCopy), before its
// time scale divides it.
func (f *fleet) duration(sizeGiB int64) time.Duration {
	transfer := float64(sizeGiB*1024) / f.RateMiBps * float64(time.Second)
	return f.Startup + time.Duration(transfer)
}

// bound is the lower bound on the makespan and what sets it.
type bound struct {
	Makespan time.Duration
	// Region is the region with the largest bound ("" when the per-image
	// term of the copy-conflict rule is larger).
	Region string
	// PerRegion is each region's bound.
	PerRegion map[string]time.Duration
	// PerImage is the longest chain of one image's copies (copy-conflict only).
	PerImage time.Duration
	// UrgentAt is when the urgent copy is submitted, emulated from the
	// first submit: half the bound of the fleet without it.
	UrgentAt time.Duration
}

// lowerBound is, per destination region, the larger of the longest copy and
// the total copy time spread over the slots; the fleet's bound is the largest
// region's. With the copy-conflict rule one source image is copied one
// region at a time, so the sum of one image's copies is a bound too.
//
// The urgent copy is work like any other: it is submitted at UrgentAt, half
// the bound of the fleet without it, and its region's bound counts it, as
// max(that bound, (total + urgent copy) / slots, UrgentAt + urgent copy).
// Failed attempts (FailRate) hold slots too, but which copies fail is not
// known in advance: the bound counts only the copies that must be made.
func (f *fleet) lowerBound() bound {
	b := f.fleetBound()
	if f.Urgent == nil {
		return b
	}
	b.UrgentAt = b.Makespan / 2
	r := f.Regions[0]
	u := f.duration(f.Urgent.SizeGiB)
	var sum time.Duration
	for _, im := range f.Images {
		sum += f.duration(im.SizeGiB)
	}
	b.PerRegion[r] = max(b.PerRegion[r], (sum+u)/time.Duration(f.Slots), b.UrgentAt+u)
	if b.PerRegion[r] > b.Makespan {
		b.Makespan, b.Region = b.PerRegion[r], r
	}
	return b
}

// fleetBound is lowerBound without the urgent copy.
func (f *fleet) fleetBound() bound {
	b := bound{PerRegion: map[string]time.Duration{}}
	for _, r := range f.Regions {
		var sum, longest time.Duration
		for _, im := range f.Images {
			d := f.duration(im.SizeGiB)
			sum += d
			longest = max(longest, d)
		}
		rb := max(longest, sum/time.Duration(f.Slots))
		b.PerRegion[r] = rb
		if rb > b.Makespan {
			b.Makespan, b.Region = rb, r
		}
	}
	if f.CopyConflict {
		for _, im := range f.Images {
			b.PerImage = max(b.PerImage, time.Duration(len(f.Regions))*f.duration(im.SizeGiB))
		}
		if b.PerImage > b.Makespan {
			b.Makespan, b.Region = b.PerImage, ""
		}
	}
	return b
}

// totalGiB is the data the fleet moves.
func (f *fleet) totalGiB() int64 {
	var n int64
	for _, im := range f.Images {
		n += im.SizeGiB
	}
	return n * int64(len(f.Regions))
}
