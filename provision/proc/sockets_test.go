package proc

import (
	"net/netip"
	"slices"
	"testing"
)

func TestListeningSockets(t *testing.T) {
	tcp := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0953 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 030012AC:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0953 0100007F:D1A2 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:0954 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
`)
	tcp6 := []byte(`  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1A0B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
`)
	got := ListeningSockets([]string{"socket:[111]", "/dev/null", "socket:[222]", "pipe:[333]", "socket:[444]"}, tcp, tcp6)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:2387"),
		netip.MustParseAddrPort("172.18.0.3:6443"),
		netip.MustParseAddrPort("[::]:6667"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
