package hardening

import "log/slog"

// Secret is key material that never prints itself: fmt, %v, %+v, %#v,
// JSON and slog all show a placeholder. Use Reveal where the bytes are
// really needed (writing a 0600 file, a TLS handshake).
type Secret []byte

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) Reveal() []byte             { return []byte(s) }
