package proc

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ListeningSockets returns the TCP sockets in LISTEN state among tables
// (the contents of /proc/net/tcp and /proc/net/tcp6 as a process sees
// them) whose inode is one of the process's, given as the targets of its
// /proc/<pid>/fd links ("socket:[12345]"; other links are ignored). The
// caller reads both, from this host or through a container, so the
// parsing is the same wherever the process runs.
func ListeningSockets(fdLinks []string, tables ...[]byte) []netip.AddrPort {
	inodes := map[string]bool{}
	for _, link := range fdLinks {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(link), "socket:["); ok {
			inodes[strings.TrimSuffix(rest, "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, data := range tables {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// The header line has no inode; 0A is LISTEN.
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			if ap, err := ParseProcAddr(fields[1]); err == nil {
				out = append(out, ap)
			}
		}
	}
	return out
}

// ParseProcAddr decodes /proc/net/tcp's "0100007F:1F90": the address in
// host byte order per 32-bit word, the port in hex.
func ParseProcAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 { // each word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
