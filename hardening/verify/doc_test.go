package verify

import (
	"os"
	"regexp"
	"testing"
)

// TestDocChecksTable fails when README.md's check table misses a
// check or names one that does not exist.
func TestDocChecksTable(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\| (SP-[A-Z]+-\d{3}) \|`).FindAllStringSubmatch(string(data), -1) {
		rows[m[1]]++
	}
	ids := map[string]bool{}
	for _, c := range Checks() {
		id := string(c.ID)
		ids[id] = true
		if rows[id] != 1 {
			t.Errorf("README.md has %d rows for %s, want 1", rows[id], id)
		}
	}
	for id := range rows {
		if !ids[id] {
			t.Errorf("README.md documents %s, which has no check", id)
		}
	}
}
