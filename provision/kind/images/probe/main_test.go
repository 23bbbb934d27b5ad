package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

func TestRunVerdicts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go accept(ln, Banner+" test 1\n")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	t.Cleanup(func() { ln.Close() })

	plan, _ := json.Marshal(Plan{Timeout: "1s", Flows: []Flow{
		{ID: "open", Kind: "tcp", Addr: ln.Addr().String()},
		{ID: "refused", Kind: "tcp", Addr: closedAddr, Attempts: 2},
		{ID: "dns", Kind: "dns", Name: "localhost"},
		{ID: "odd", Kind: "udp", Addr: "x"},
	}})
	var out bytes.Buffer
	if err := run(&out, string(plan)); err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	sc := bufio.NewScanner(&out)
	var last string
	for sc.Scan() {
		last = sc.Text()
		if last == Done {
			break
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got[r.ID] = r
	}
	if last != Done {
		t.Fatalf("output does not end with %s", Done)
	}
	for id, want := range map[string]string{"open": "open", "refused": "refused", "dns": "resolved", "odd": "error"} {
		if got[id].Verdict != want {
			t.Errorf("%s: verdict %q (%s), want %q", id, got[id].Verdict, got[id].Detail, want)
		}
	}
	if !strings.Contains(got["open"].Detail, Banner+" test 1") {
		t.Errorf("open flow's detail %q does not carry the banner", got["open"].Detail)
	}
	if got["refused"].Attempts != 2 {
		t.Errorf("refused flow tried %d times, want 2", got["refused"].Attempts)
	}
}

func TestRunRejectsBadPlans(t *testing.T) {
	for _, plan := range []string{"", "{", `{"timeout":"-1s"}`, `{"timeout":"soon"}`} {
		if err := run(&bytes.Buffer{}, plan); err == nil {
			t.Errorf("plan %q: no error", plan)
		}
	}
}
