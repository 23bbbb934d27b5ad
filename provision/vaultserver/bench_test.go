package vaultserver

import (
	"context"
	"testing"
)

// BenchmarkEnsure measures Ensure from an empty directory (start, init,
// unseal, audit device) and on a Vault that already serves (the cost every
// secprov command pays once the local Vault is up).
func BenchmarkEnsure(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		s, _ := newServer(b)
		for b.Loop() {
			b.StopTimer()
			if err := s.Destroy(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			mustEnsure(b, ctx, s)
		}
	})
	b.Run("warm", func(b *testing.B) {
		s, _ := newServer(b)
		mustEnsure(b, ctx, s)
		for b.Loop() {
			mustEnsure(b, ctx, s)
		}
	})
}
