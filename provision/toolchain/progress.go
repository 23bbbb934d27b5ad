package toolchain

import "time"

// EventKind is the kind of a progress event.
type EventKind int

// Event kinds. A tool that is found on PATH or in the cache produces only
// EventDone; Start and Step mean real work (waiting, downloading, building).
const (
	EventStart  EventKind = iota // work on a tool begins; Phase says what
	EventStep                    // a new step within the phase (Step), or a new phase
	EventDone                    // the tool is ready; Installed is set
	EventFailed                  // the tool could not be made ready; Err is set
)

// Event reports progress on one tool.
type Event struct {
	Kind    EventKind
	Tool    string
	Version string
	// Phase is a short description of the current work, e.g. "building from
	// the Go module proxy".
	Phase string
	// Step is the current step of the phase, e.g. "go mod tidy"; may be empty.
	Step string
	// Elapsed is the time since Ensure started on this tool.
	Elapsed   time.Duration
	Installed *Installed
	Err       error
}

// Progress receives events. Ensure calls it synchronously from the calling
// goroutine; an implementation that animates must do so on its own.
type Progress interface {
	Event(Event)
}

// ProgressFunc adapts a function to Progress.
type ProgressFunc func(Event)

// Event calls f(e).
func (f ProgressFunc) Event(e Event) { f(e) }

// Phases reported in events.
const (
	PhaseWaiting  = "waiting for another secprov process installing it"
	PhaseLinking  = "linking the PATH binary into the cache"
	PhaseDownload = "downloading the official release"
	PhaseBuild    = "building from the Go module proxy"
)

type tracker struct {
	p       Progress
	tool    Tool
	start   time.Time
	started bool
}

func (t *tracker) emit(e Event) {
	if t.p == nil {
		return
	}
	e.Tool, e.Version = t.tool.Name, t.tool.Version
	e.Elapsed = time.Since(t.start)
	t.p.Event(e)
}

// phase announces a phase: the first one starts the tool's progress line.
func (t *tracker) phase(phase string) {
	kind := EventStep
	if !t.started {
		kind, t.started = EventStart, true
	}
	t.emit(Event{Kind: kind, Phase: phase})
}

func (t *tracker) step(phase, step string) {
	if !t.started {
		t.phase(phase)
	}
	t.emit(Event{Kind: EventStep, Phase: phase, Step: step})
}
