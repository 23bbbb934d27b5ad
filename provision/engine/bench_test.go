package engine_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/engine/enginetest"
)

// TestTimings measures the wall time of each operation against the real
// engine (one small resource) and logs it; it fails only if an operation
// takes absurdly long, which would point at a download attempt or a
// timeout somewhere.
func TestTimings(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if os.Getenv("SECPROV_TEST_TRACE_COMMANDS") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, _ := enginetest.NewEngine(t, log)
	ctx := context.Background()
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: filepath.Join(t.TempDir(), "f"), Content: "x"}})
	steps := []struct {
		name string
		run  func() error
	}{
		{"preview (new stack)", func() error { _, err := e.Preview(ctx, "timing", prog, engine.Options{}); return err }},
		{"up (create)", func() error { _, err := e.Up(ctx, "timing", prog, engine.Options{}); return err }},
		{"preview (no changes)", func() error { _, err := e.Preview(ctx, "timing", prog, engine.Options{}); return err }},
		{"up (no-op)", func() error { _, err := e.Up(ctx, "timing", prog, engine.Options{}); return err }},
		{"destroy", func() error { _, err := e.Destroy(ctx, "timing", engine.Options{}); return err }},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		d := time.Since(start)
		t.Logf("%-22s %v", s.name, d.Round(10*time.Millisecond))
		if d > time.Minute {
			t.Errorf("%s took %v", s.name, d)
		}
	}
}

// BenchmarkUpNoop measures an `up` that has nothing to do, the common case
// of re-running secprov on an unchanged blueprint.
func BenchmarkUpNoop(b *testing.B) {
	e, _ := enginetest.NewEngine(b, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	prog := fileProgram(map[string]enginetest.FileInputs{"f": {Path: filepath.Join(b.TempDir(), "f"), Content: "x"}})
	if _, err := e.Up(ctx, "bench", prog, engine.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := e.Up(ctx, "bench", prog, engine.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Counts[engine.OpSame] != 1 {
			b.Fatalf("counts = %v, want a no-op", res.Counts)
		}
	}
}
