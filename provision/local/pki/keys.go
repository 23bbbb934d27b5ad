package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"secprov.dev/secprov/internal/certs"
)

func certSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// remedy tells what to do with a damaged file of the bundle.
const remedy = "restore it from a backup, or move it aside so secprov creates a new one (for a CA key that means a new CA)"

// withRemedy adds what to do to a damaged-file error.
func withRemedy(err error) error {
	var d *certs.DamagedError
	if errors.As(err, &d) {
		return fmt.Errorf("%w: %s", err, remedy)
	}
	return err
}

func loadCert(path string) (*x509.Certificate, error) {
	c, err := certs.ReadCert(path)
	return c, withRemedy(err)
}

func loadKey(path string) (crypto.Signer, error) {
	k, err := certs.ReadKey(path)
	return k, withRemedy(err)
}

func fromNetIPs(ips []net.IP) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a)
		}
	}
	return out
}
