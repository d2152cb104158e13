package bench

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a run is. On a terminal it is a progress bar
// (schollz/progressbar) redrawn in place; anywhere else (a file, a pipe, a
// CI log) it is one line when the run starts and one when it ends, so
// that logs get no carriage returns or escape sequences.
type progress struct {
	out   io.Writer
	name  string
	max   int64
	bar   *progressbar.ProgressBar
	start time.Time
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts the progress of name towards max (a count, or the
// milliseconds of a duration): a bar when tty, else a line.
func newProgress(out io.Writer, name string, max int64, tty bool) *progress {
	p := &progress{out: out, name: name, max: max, start: time.Now()}
	if !tty {
		fmt.Fprintf(out, "%s: running\n", name)
		return p
	}
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(name),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetRenderBlankState(true),
	)
	return p
}

// set moves the bar to done (of max), with detail after the name.
func (p *progress) set(done int64, detail string) {
	if p.bar == nil {
		return
	}
	_ = p.bar.Set64(min(done, p.max)) // the bar's own errors are about its state, not the run
	p.bar.Describe(fmt.Sprintf("%s %s", p.name, detail))
}

// finish ends the progress with summary (what was sent and delivered).
func (p *progress) finish(summary string) {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.out)
		return
	}
	fmt.Fprintf(p.out, "%s: %s in %s\n", p.name, summary, time.Since(p.start).Round(time.Millisecond))
}
