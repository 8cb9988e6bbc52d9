package main

import (
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
)

// A sink shows a stream of job changes: the live view in a terminal, plain
// lines, or encoded messages (-o json|yaml).
type sink interface {
	// message shows one stream message; j is the job it carries (nil for
	// the snapshot-complete marker). The tracker is already updated.
	message(raw proto.Message, j *replicatorv1.Job) error
	// note tells the user about the connection (reconnecting, compacted);
	// "" clears a previous note.
	note(msg string)
	// tick is called every refresh interval (live view only).
	tick() error
	// close shows the final state.
	close() error
	// refresh is the redraw interval; 0 means tick is never needed.
	refresh() time.Duration
}

// newSink picks the sink for -o and the terminal.
func (a *app) newSink(tr *tracker, groupBy, empty string) sink {
	switch a.g.output {
	case "json", "yaml":
		return &encodedSink{w: a.stdout, errw: a.stderr, format: a.g.output}
	}
	if ti := a.term(); ti.tty {
		return &liveSink{tr: tr, screen: &liveScreen{w: a.stdout}, term: a.term, now: a.now,
			opts: viewOptions{groupBy: groupBy, empty: empty}}
	}
	return &plainSink{w: a.stdout, errw: a.stderr}
}

// plainSink prints one plainLine per change; notes go to stderr so stdout
// stays greppable.
type plainSink struct{ w, errw io.Writer }

func (s *plainSink) message(_ proto.Message, j *replicatorv1.Job) error {
	if j == nil {
		return nil
	}
	_, err := fmt.Fprintln(s.w, plainLine(j))
	return err
}
func (s *plainSink) note(msg string) {
	if msg != "" {
		fmt.Fprintf(s.errw, "replctl: %s\n", msg)
	}
}
func (s *plainSink) tick() error            { return nil }
func (s *plainSink) close() error           { return nil }
func (s *plainSink) refresh() time.Duration { return 0 }

// encodedSink prints every stream message as protojson (one per line) or
// YAML; notes go to stderr.
type encodedSink struct {
	w, errw io.Writer
	format  string
}

func (s *encodedSink) message(raw proto.Message, _ *replicatorv1.Job) error {
	return printMessage(s.w, s.format, raw)
}
func (s *encodedSink) note(msg string) {
	if msg != "" {
		fmt.Fprintf(s.errw, "replctl: %s\n", msg)
	}
}
func (s *encodedSink) tick() error            { return nil }
func (s *encodedSink) close() error           { return nil }
func (s *encodedSink) refresh() time.Duration { return 0 }

// Live view pacing: at most ~10 frames a second, and at least one a second
// so ETAs count down between changes.
const (
	liveFrameInterval = 100 * time.Millisecond
	liveIdleRedraw    = time.Second
)

// liveSink redraws the live view, throttled: a change marks the view dirty
// and the next tick draws it.
type liveSink struct {
	tr       *tracker
	screen   *liveScreen
	term     func() termInfo
	now      func() time.Time
	opts     viewOptions
	dirty    bool
	lastDraw time.Time
}

func (s *liveSink) message(_ proto.Message, _ *replicatorv1.Job) error {
	s.dirty = true
	if s.lastDraw.IsZero() {
		return s.draw() // show something at once
	}
	return nil
}

func (s *liveSink) note(msg string) {
	if s.opts.status != msg {
		s.opts.status = msg
		s.dirty = true
	}
}

func (s *liveSink) tick() error {
	if s.dirty || s.now().Sub(s.lastDraw) >= liveIdleRedraw {
		return s.draw()
	}
	return nil
}

func (s *liveSink) draw() error {
	ti := s.term()
	o := s.opts
	o.width, o.height = ti.width, ti.height
	now := s.now()
	s.dirty, s.lastDraw = false, now
	return s.screen.draw(renderFrame(s.tr.list(), now, o))
}

func (s *liveSink) close() error {
	if err := s.draw(); err != nil {
		return err
	}
	return s.screen.close()
}

func (s *liveSink) refresh() time.Duration { return liveFrameInterval }
