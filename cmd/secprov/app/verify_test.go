package app

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestSARIFBlueprints: verify -o sarif finds each cluster's blueprint in
// -f before the suite runs, and says to pass -f when one is missing.
func TestSARIFBlueprints(t *testing.T) {
	examples := filepath.Join("..", "..", "..", "blueprints", "examples")
	bps, err := sarifBlueprints([]string{examples}, []string{"shop-prod", "shop-test"})
	if err != nil || len(bps) != 2 {
		t.Fatalf("examples: %d blueprints, %v", len(bps), err)
	}
	_, err = sarifBlueprints([]string{examples}, []string{"shop-prod", "elsewhere"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitUsage || !strings.Contains(err.Error(), "elsewhere") || !strings.Contains(err.Error(), "-f") {
		t.Errorf("missing blueprint: %v", err)
	}
}
