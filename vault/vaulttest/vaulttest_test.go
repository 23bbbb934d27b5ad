package vaulttest

import (
	"context"
	"testing"
)

func TestStartDev(t *testing.T) {
	d := StartDev(t)
	c, err := d.Access().Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d.MustWrite(t, "sys/mounts/transit-x", map[string]any{"type": "transit"})
	if _, err := c.Logical().Write("transit-x/keys/k", nil); err != nil {
		t.Fatal(err)
	}
	s, err := c.Logical().Read("transit-x/keys/k")
	if err != nil || s == nil {
		t.Fatalf("read key: %v %v", s, err)
	}
	if v := s.Data["latest_version"]; v == nil {
		t.Fatalf("no latest_version in %v", s.Data)
	}
}
