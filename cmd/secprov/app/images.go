package app

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"secprov.dev/secprov/provision/kind/images"
	"secprov.dev/secprov/provision/paths"
)

type imagesBuildFlags struct {
	force        bool
	debianMirror string
}

type imagesListFlags struct {
	output string
}

func newImagesCommand(s Streams, root *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build and inspect the offline images for kind clusters (node, Cilium) made from pinned sources",
		Long: `kind clusters run the pinned upstream images by default (kindest/node, Cilium
from quay.io). For sites without a container registry, ` + "`images build`" + ` makes
the same set from pinned sources only — Debian packages through debootstrap,
Go modules through the module proxy, the toolchain's Kubernetes and etcd —
and tags it in the local Docker engine under ` + images.Repository + `.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newImagesBuildCommand(s, root), newImagesListCommand(s))
	return cmd
}

func newImagesBuildCommand(s Streams, root *rootFlags) *cobra.Command {
	flags := &imagesBuildFlags{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the offline node, Kubernetes, CoreDNS, pause and Cilium images (only what changed)",
		Long: `Build the offline images, printing one line per step. Each image is tagged
with the digest of its inputs and skipped when an image with that digest
exists; root filesystems and Go builds are cached in the cache directory.
A cold build takes long (two debootstraps, the Cilium and CoreDNS builds,
and the toolchain if it is not installed yet); a warm one takes seconds.
Needs root (debootstrap), Docker and Go. Progress goes to stderr.

Environment: SECPROV_CACHE (cache root), SECPROV_DEBIAN_MIRROR (Debian mirror).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			progress := newStepProgress(s.Err, isTerminal(s.Err))
			defer progress.stop()
			start := time.Now()
			set, err := images.Build(cmd.Context(), images.Options{
				Logger:       root.logger(s.Err),
				Progress:     progress,
				DebianMirror: flags.debianMirror,
				Force:        flags.force,
			})
			progress.stop()
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			fmt.Fprintf(s.Err, "offline images ready in %s: node %s\n", formatElapsed(time.Since(start)), set.Node)
			return nil
		},
	}
	cmd.Flags().BoolVar(&flags.force, "force", false, "rebuild every image even when its inputs did not change")
	cmd.Flags().StringVar(&flags.debianMirror, "debian-mirror", "", "Debian mirror for debootstrap (default $"+images.EnvDebianMirror+", else "+images.DefaultDebianMirror+")")
	return cmd
}

func newImagesListCommand(s Streams) *cobra.Command {
	flags := &imagesListFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the offline images of the last build, each with a short SBOM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.output != "text" && flags.output != "json" {
				return usageErr(fmt.Errorf("unknown output format %q: use text or json", flags.output))
			}
			cache, err := paths.CacheDir()
			if err != nil {
				return err
			}
			m, err := images.ReadManifest(images.ManifestPath(cache))
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			if flags.output == "json" {
				return writeJSON(s.Out, m)
			}
			return writeImagesText(s.Out, m)
		},
	}
	cmd.Flags().StringVarP(&flags.output, "output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", "text", "json")
	return cmd
}

func writeImagesText(w io.Writer, m *images.Manifest) error {
	fmt.Fprintf(w, "built %s\n", m.BuiltAt.Format(time.RFC3339))
	for _, im := range m.Images {
		names := []string{im.Ref.String()}
		for _, a := range im.Aliases {
			names = append(names, a.String())
		}
		fmt.Fprintf(w, "\n%s  %s  %s  inputs %s\n", im.Name, strings.Join(names, ", "), formatSize(im.Size), short(im.Inputs))
		if len(im.Preloaded) > 0 {
			fmt.Fprintf(w, "  preloaded: %s\n", strings.Join(im.Preloaded, ", "))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  COMPONENT\tVERSION\tSOURCE\tSHA256")
		for _, c := range im.Components {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, c.Version, c.Source, short(c.SHA256))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// stepProgress prints build steps the way toolProgress prints tools: ✓
// when a step did its work, ✓ … (cached) when it found the result, ✗ with
// the error, and while steps run a • line naming them with a ticking
// elapsed time (redrawn in place on a terminal, every 30 s in a log).
// Steps may run concurrently.
type stepProgress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	running map[string]time.Time // step → start
	detail  map[string]string
	tick    redrawTicker
	drawn   bool
}

func newStepProgress(w io.Writer, tty bool) *stepProgress {
	return &stepProgress{w: w, tty: tty, running: map[string]time.Time{}, detail: map[string]string{}}
}

func (p *stepProgress) Event(e images.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case images.EventStart:
		p.running[e.Step] = time.Now()
		delete(p.detail, e.Step)
		p.drawLocked()
		p.startTickerLocked()
		return
	case images.EventStep:
		if _, ok := p.running[e.Step]; ok {
			p.detail[e.Step] = e.Detail
			if p.tty {
				p.drawLocked()
			}
		}
		return
	}
	delete(p.running, e.Step)
	delete(p.detail, e.Step)
	p.clearLocked()
	switch e.Kind {
	case images.EventDone:
		fmt.Fprintf(p.w, "✓ %s %s\n", e.Step, formatElapsed(e.Elapsed))
	case images.EventCached:
		fmt.Fprintf(p.w, "✓ %s (cached) %s\n", e.Step, formatElapsed(e.Elapsed))
	case images.EventFailed:
		fmt.Fprintf(p.w, "✗ %s %s: %v\n", e.Step, formatElapsed(e.Elapsed), e.Err)
	}
	if len(p.running) == 0 {
		p.stopTickerLocked()
		return
	}
	if p.tty {
		p.drawLocked()
	}
}

func (p *stepProgress) lineLocked() string {
	steps := make([]string, 0, len(p.running))
	for s := range p.running {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	parts := make([]string, len(steps))
	for i, s := range steps {
		text := s
		if d := p.detail[s]; d != "" {
			text += " (" + d + ")"
		}
		parts[i] = fmt.Sprintf("%s… %s", text, formatElapsed(time.Since(p.running[s])))
	}
	return "• " + strings.Join(parts, "; ")
}

func (p *stepProgress) drawLocked() {
	if len(p.running) == 0 {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.lineLocked())
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, p.lineLocked())
	}
}

func (p *stepProgress) clearLocked() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *stepProgress) startTickerLocked() { p.tick.start(&p.mu, p.tty, p.drawLocked) }

func (p *stepProgress) stopTickerLocked() { p.tick.stop() }

func (p *stepProgress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopTickerLocked()
	p.clearLocked()
}
