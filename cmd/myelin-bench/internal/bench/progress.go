package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress shows on a terminal what the run is doing: the scenario's phase and how many of its
// steps are done. On anything else it prints a line per phase and one every few seconds.
type Progress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	label   string
	total   int64
	done    atomic.Int64
	started time.Time
	stop    chan struct{}
	stopped chan struct{}
}

// NewProgress writes to w (normally stderr); tty says whether w is a terminal.
func NewProgress(w io.Writer, tty bool) *Progress {
	p := &Progress{w: w, tty: tty, stop: make(chan struct{}), stopped: make(chan struct{})}
	go p.loop()
	return p
}

// Phase starts a new phase of total steps (0 when unknown).
func (p *Progress) Phase(label string, total int) {
	p.mu.Lock()
	p.label, p.total, p.started = label, int64(total), time.Now()
	p.done.Store(0)
	p.mu.Unlock()
	if !p.tty {
		fmt.Fprintf(p.w, "... %s\n", label)
	}
}

// Step marks one step of the current phase done.
func (p *Progress) Step() { p.done.Add(1) }

// Close stops the display and clears its line.
func (p *Progress) Close() {
	close(p.stop)
	<-p.stopped
}

func (p *Progress) loop() {
	defer close(p.stopped)
	interval := 200 * time.Millisecond
	if !p.tty {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			if p.tty {
				fmt.Fprint(p.w, "\r\033[K")
			}
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *Progress) draw() {
	p.mu.Lock()
	label, total, started := p.label, p.total, p.started
	p.mu.Unlock()
	if label == "" {
		return
	}
	done := p.done.Load()
	elapsed := time.Since(started).Truncate(100 * time.Millisecond)
	var line string
	if total > 0 {
		const width = 24
		filled := int(min(done, total) * width / total)
		line = fmt.Sprintf("%s [%s%s] %d/%d %s", label, strings.Repeat("#", filled),
			strings.Repeat(" ", width-filled), done, total, elapsed)
	} else {
		line = fmt.Sprintf("%s %d %s", label, done, elapsed)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintf(p.w, "... %s\n", line)
	}
}
