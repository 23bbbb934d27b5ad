package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision/toolchain"
)

type toolsInstallFlags struct {
	all        bool
	noPath     bool
	noDownload bool
	noBuild    bool
	mirror     string
}

type toolsListFlags struct {
	output string
}

func newToolsCommand(s Streams, root *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Obtain and inspect the pinned toolchain (Kubernetes control plane, etcd, Pulumi, Vault)",
		Long: `secprov drives pinned versions of kube-apiserver, kube-controller-manager,
kube-scheduler, etcd, pulumi and vault. Each is taken from PATH when the
version matches, else from the cache, else downloaded from its publisher
(SHA-256 verified), else built from the Go module proxy.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newToolsInstallCommand(s, root), newToolsListCommand(s, root))
	return cmd
}

func newToolsInstallCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &toolsInstallFlags{}
	cmd := &cobra.Command{
		Use:   "install [NAME...]",
		Short: "Make the pinned tools ready (default: kubernetes, etcd, pulumi; vault only when named or with --all)",
		Long: `Make the pinned tools ready, printing one line per tool. A cold build from the
Go module proxy takes long (Kubernetes 15–25 min, Vault ≈ 15 min on two busy cores); later runs
find the tools in the cache at once. Progress goes to stderr.

Environment: SECPROV_CACHE (cache root), SECPROV_TOOLS_MIRROR (mirror root
URL for downloads), SECPROV_TOOLS_NO_DOWNLOAD=1 (skip downloads).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if flags.all && len(args) > 0 {
				return usageErr(errors.New("name tools or use --all, not both"))
			}
			progress := newToolProgress(s.Err, isTerminal(s.Err), false)
			defer progress.stop()
			m, err := toolchain.New(toolchain.Options{
				Logger:     root.logger(s.Err),
				Progress:   progress,
				NoPath:     flags.noPath,
				NoDownload: flags.noDownload,
				Mirror:     flags.mirror,
				NoBuild:    flags.noBuild,
			})
			if err != nil {
				return usageErr(err)
			}
			names := args
			if flags.all {
				for _, t := range m.Tools() {
					names = append(names, t.Name)
				}
			}
			if len(names) == 0 {
				names = m.DefaultNames()
			}
			for _, n := range names {
				if _, err := m.Tool(n); err != nil {
					return usageErr(err)
				}
			}
			ready, err := m.EnsureAll(cmd.Context(), names...)
			if err != nil {
				// Each failure was printed in full on its ✗ line. Exit 1, not
				// the usage code Run gives plain errors: the input was fine.
				failed := len(names) - len(ready)
				return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d tools are not ready (see above)", failed, len(names))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&flags.all, "all", false, "install every pinned tool, vault included")
	completeTools(cmd)
	cmd.Flags().BoolVar(&flags.noPath, "no-path", false, "ignore matching binaries on PATH")
	cmd.Flags().BoolVar(&flags.noDownload, "no-download", false, "never download official releases (also SECPROV_TOOLS_NO_DOWNLOAD=1)")
	cmd.Flags().BoolVar(&flags.noBuild, "no-build", false, "never build from the Go module proxy")
	cmd.Flags().StringVar(&flags.mirror, "mirror", "", "https mirror root for downloads (default $SECPROV_TOOLS_MIRROR)")
	return cmd
}

func newToolsListCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &toolsListFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show each pinned tool's version, state and location without installing anything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.output != "text" && flags.output != "json" {
				return usageErr(fmt.Errorf("unknown output format %q: use text or json", flags.output))
			}
			m, err := toolchain.New(toolchain.Options{Logger: root.logger(s.Err)})
			if err != nil {
				return usageErr(err)
			}
			list := m.List(cmd.Context())
			if flags.output == "json" {
				return writeJSON(s.Out, list)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tSOURCE\tLOCATION")
			for _, st := range list {
				where := st.Dir
				if st.State != toolchain.StateInstalled {
					where = st.Problem
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Name, st.Version, st.State, st.Source, where)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	return cmd
}

// toolProgress prints one line per tool: ✓ when ready, ✗ when not, and
// while work is under way a • line whose elapsed time ticks (redrawn in
// place on a terminal, repeated every 30 s in a log).
type toolProgress struct {
	w         io.Writer
	tty       bool
	quietHits bool // print nothing for tools found on PATH or in the cache

	mu      sync.Mutex
	current string    // the • line without its elapsed time; "" when idle
	since   time.Time // when work on the current tool began
	tick    redrawTicker
}

func newToolProgress(w io.Writer, tty, quietHits bool) *toolProgress {
	return &toolProgress{w: w, tty: tty, quietHits: quietHits}
}

func (p *toolProgress) Event(e toolchain.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case toolchain.EventStart, toolchain.EventStep:
		text := fmt.Sprintf("%s %s: %s", e.Tool, e.Version, e.Phase)
		if e.Step != "" {
			text += " (" + e.Step + ")"
		}
		p.current, p.since = text+"…", time.Now().Add(-e.Elapsed)
		p.drawLocked()
		p.startTickerLocked()
	case toolchain.EventDone:
		working := p.current != ""
		p.endLocked()
		if p.quietHits && !working {
			return
		}
		fmt.Fprintf(p.w, "✓ %s %s (%s) %s\n", e.Tool, e.Version, e.Installed.Source, formatElapsed(e.Elapsed))
	case toolchain.EventFailed:
		p.endLocked()
		fmt.Fprintf(p.w, "✗ %v\n", e.Err)
	}
}

func (p *toolProgress) drawLocked() {
	line := fmt.Sprintf("• %s %s", p.current, formatElapsed(time.Since(p.since)))
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *toolProgress) startTickerLocked() {
	p.tick.start(&p.mu, p.tty, func() {
		if p.current != "" {
			p.drawLocked()
		}
	})
}

// endLocked stops the ticker and clears the • line on a terminal.
func (p *toolProgress) endLocked() {
	p.tick.stop()
	if p.current != "" && p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	p.current = ""
}

func (p *toolProgress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
}

// redrawTicker calls a progress printer's redraw while work runs: every
// second on a terminal (the line is redrawn in place), every 30 s in a log.
type redrawTicker struct {
	ticker *time.Ticker
	done   chan struct{}
}

// start begins ticking unless it already does; redraw runs with mu held.
// The caller holds mu.
func (r *redrawTicker) start(mu *sync.Mutex, tty bool, redraw func()) {
	if r.ticker != nil {
		return
	}
	every := 30 * time.Second
	if tty {
		every = time.Second
	}
	r.ticker, r.done = time.NewTicker(every), make(chan struct{})
	go func(t *time.Ticker, done chan struct{}) {
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				redraw()
				mu.Unlock()
			}
		}
	}(r.ticker, r.done)
}

// stop ends the ticking; the caller holds the printer's mutex.
func (r *redrawTicker) stop() {
	if r.ticker != nil {
		r.ticker.Stop()
		close(r.done)
		r.ticker = nil
	}
}

func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Truncate(time.Second).String() // 4m12s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
