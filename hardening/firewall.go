package hardening

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/blueprints/v1alpha1"
)

// APIFirewall is the host packet filter that narrows a public API endpoint
// to spec.apiServer.allowedCIDRs (SP-API-002): one nftables table of the
// inet family per cluster, whose input chain accepts the API server's port
// from loopback and from the listed networks and drops it from everyone
// else. Other ports and other tables are left alone: the chain's policy is
// accept, and a packet another table drops stays dropped.
//
// Loopback is always accepted: what reaches the port through lo started on
// this host (secprov, the control plane, verify), and a shell on the host
// is not a network client the endpoint needs to be narrowed against.
//
// Dropped, not rejected: a client outside the list learns nothing about
// the port, as with a cloud load balancer's source ranges.
type APIFirewall struct {
	// Table is the nftables table (family inet) that holds the rules.
	Table string
	// Port is the API server's TCP port.
	Port int
	// Allowed are the client networks, canonical, in blueprint order.
	Allowed []netip.Prefix
}

// FirewallFamily is the nftables family of every APIFirewall table: inet
// covers IPv4 and IPv6 with one table.
const FirewallFamily = "inet"

// firewallChain is the chain of the table; its hook is input.
const firewallChain = "input"

// FirewallTable names a cluster's table. Cluster names are DNS labels,
// which never hold '_', so the mapping is one to one.
func FirewallTable(cluster string) string {
	return "secprov_" + strings.ReplaceAll(cluster, "-", "_")
}

// APIFirewall renders the packet filter of a public endpoint with allowed
// CIDRs; nil when there is nothing to filter: a private endpoint binds the
// provider's private host (loopback for local), and a public endpoint
// without allowedCIDRs is open to every client by the blueprint's choice
// (review reports it under SP-API-001).
func (cp *ControlPlane) APIFirewall() *APIFirewall {
	api := cp.Spec.APIServer
	if api.Endpoint != v1alpha1.EndpointPublic || len(api.AllowedCIDRs) == 0 {
		return nil
	}
	f := &APIFirewall{Table: FirewallTable(cp.Name), Port: cp.Ports.APIServer}
	for _, c := range api.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			continue // the loader refused it already
		}
		f.Allowed = append(f.Allowed, p.Masked())
	}
	return f
}

// Controls the firewall renders.
func (*APIFirewall) Controls() []blueprints.ControlID {
	return []blueprints.ControlID{blueprints.APIAllowedCIDRsNarrow}
}

// Script is an `nft -f` script that creates the table or replaces it
// whole, in one transaction: declaring the table first makes the delete
// succeed when it did not exist yet, and no packet sees a half-built
// chain.
func (f *APIFirewall) Script() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", FirewallFamily, f.Table, FirewallFamily, f.Table)
	fmt.Fprintf(&b, "table %s %s {\n\tchain %s {\n\t\ttype filter hook input priority filter; policy accept;\n", FirewallFamily, f.Table, firewallChain)
	fmt.Fprintf(&b, "\t\tiifname \"lo\" tcp dport %d accept\n", f.Port)
	for _, p := range f.Allowed {
		fam := "ip"
		if p.Addr().Is6() {
			fam = "ip6"
		}
		// One rule per network: an anonymous set refuses overlapping
		// intervals, and a blueprint may list 10.0.0.0/8 and 10.1.0.0/16.
		fmt.Fprintf(&b, "\t\t%s saddr %s tcp dport %d accept\n", fam, p, f.Port)
	}
	fmt.Fprintf(&b, "\t\ttcp dport %d drop\n\t}\n}\n", f.Port)
	return b.String()
}

// DeleteScript removes the table; like Script it succeeds whether or not
// the table exists.
func (f *APIFirewall) DeleteScript() string { return DeleteFirewallScript(f.Table) }

// DeleteFirewallScript removes table, present or not.
func DeleteFirewallScript(table string) string {
	return fmt.Sprintf("table %s %s\ndelete table %s %s\n", FirewallFamily, table, FirewallFamily, table)
}

// FirewallState is what a live table does to the API server's port, read
// from `nft -j list table inet NAME`, in the order the kernel evaluates it.
type FirewallState struct {
	// Hooked: the table has a filter chain on the input hook.
	Hooked bool
	// Loopback: connections through lo are accepted before any drop.
	Loopback bool
	// Allowed are the source networks accepted before the drop.
	Allowed []netip.Prefix
	// AnySource: a rule accepts the port from every source.
	AnySource bool
	// DropsRest: after the accepts, every other source is dropped (a rule
	// or the chain's drop policy).
	DropsRest bool
	// Unknown describes rules secprov does not render and cannot judge.
	Unknown []string
}

// ParseFirewall reads `nft -j list table` output and evaluates the input
// chains for TCP connections to port.
func ParseFirewall(data []byte, port int) (FirewallState, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return FirewallState{}, fmt.Errorf("nft JSON: %w", err)
	}
	type chain struct {
		Name, Hook, Type, Policy string
	}
	type rule struct {
		Chain string
		Expr  []map[string]json.RawMessage `json:"expr"`
	}
	inputs := map[string]chain{}
	var rules []rule
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c chain
			if err := json.Unmarshal(raw, &c); err != nil {
				return FirewallState{}, fmt.Errorf("nft chain: %w", err)
			}
			if c.Hook == "input" && c.Type == "filter" {
				inputs[c.Name] = c
			}
		}
		if raw, ok := obj["rule"]; ok {
			var r rule
			if err := json.Unmarshal(raw, &r); err != nil {
				return FirewallState{}, fmt.Errorf("nft rule: %w", err)
			}
			rules = append(rules, r)
		}
	}
	var st FirewallState
	st.Hooked = len(inputs) > 0
	for _, c := range inputs {
		if c.Policy == "drop" {
			st.DropsRest = true
		}
	}
	for _, r := range rules {
		if _, ok := inputs[r.Chain]; !ok {
			continue
		}
		m, err := parseRule(r.Expr)
		if err != nil {
			st.Unknown = append(st.Unknown, fmt.Sprintf("chain %s: %v", r.Chain, err))
			continue
		}
		if m.port != 0 && m.port != port {
			continue // another port: not the API server's business
		}
		if st.DropsRest && !m.drop {
			continue // after the drop: never reached for this port
		}
		switch {
		case m.drop:
			if !m.hasSource && !m.loopback {
				st.DropsRest = true
			}
		case m.loopback && !m.hasSource:
			st.Loopback = true
		case m.hasSource:
			st.Allowed = append(st.Allowed, m.source)
		default:
			st.AnySource = true
		}
	}
	return st, nil
}

type ruleMatch struct {
	port      int
	loopback  bool
	hasSource bool
	source    netip.Prefix
	drop      bool
}

// parseRule understands exactly the matches Script renders; anything else
// is an error, so a rule added by hand is reported, never guessed at.
func parseRule(exprs []map[string]json.RawMessage) (ruleMatch, error) {
	var m ruleMatch
	verdict := ""
	for _, e := range exprs {
		for k, raw := range e {
			switch k {
			case "accept", "drop":
				verdict = k
			case "counter":
			case "match":
				if err := m.match(raw); err != nil {
					return m, err
				}
			default:
				return m, fmt.Errorf("unrecognised expression %q", k)
			}
		}
	}
	switch verdict {
	case "":
		return m, fmt.Errorf("a rule without accept or drop")
	case "drop":
		m.drop = true
	}
	return m, nil
}

func (m *ruleMatch) match(raw json.RawMessage) error {
	var x struct {
		Op   string `json:"op"`
		Left struct {
			Meta    *struct{ Key string } `json:"meta"`
			Payload *struct {
				Protocol string `json:"protocol"`
				Field    string `json:"field"`
			} `json:"payload"`
		} `json:"left"`
		Right json.RawMessage `json:"right"`
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		return err
	}
	if x.Op != "==" && x.Op != "in" {
		return fmt.Errorf("match with operator %q", x.Op)
	}
	switch {
	case x.Left.Meta != nil && x.Left.Meta.Key == "iifname":
		var s string
		if json.Unmarshal(x.Right, &s) != nil || s != "lo" {
			return fmt.Errorf("input interface %s", x.Right)
		}
		m.loopback = true
	case x.Left.Payload != nil && x.Left.Payload.Protocol == "tcp" && x.Left.Payload.Field == "dport":
		if json.Unmarshal(x.Right, &m.port) != nil || m.port == 0 {
			return fmt.Errorf("tcp dport %s", x.Right)
		}
	case x.Left.Payload != nil && (x.Left.Payload.Protocol == "ip" || x.Left.Payload.Protocol == "ip6") && x.Left.Payload.Field == "saddr":
		p, err := parseNFTPrefix(x.Right)
		if err != nil {
			return err
		}
		m.hasSource, m.source = true, p
	default:
		return fmt.Errorf("match on %s", compact(raw))
	}
	return nil
}

func parseNFTPrefix(raw json.RawMessage) (netip.Prefix, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("source %q", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	var p struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Prefix == nil {
		return netip.Prefix{}, fmt.Errorf("source %s (a set or range secprov does not render)", compact(raw))
	}
	a, err := netip.ParseAddr(p.Prefix.Addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("source %q", p.Prefix.Addr)
	}
	return netip.PrefixFrom(a, p.Prefix.Len).Masked(), nil
}

func compact(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// Judge compares a live state with f: every problem found, as sentences;
// none means the live table lets in exactly f's networks (and loopback).
func (f *APIFirewall) Judge(st FirewallState) []string {
	var out []string
	if !st.Hooked {
		out = append(out, fmt.Sprintf("table %s %s has no filter chain on the input hook", FirewallFamily, f.Table))
	}
	out = append(out, st.Unknown...)
	if st.AnySource {
		out = append(out, fmt.Sprintf("a rule accepts port %d from every source", f.Port))
	}
	if !st.DropsRest {
		out = append(out, fmt.Sprintf("nothing drops port %d from sources outside the list", f.Port))
	}
	for _, p := range st.Allowed {
		if !slices.ContainsFunc(f.Allowed, func(a netip.Prefix) bool { return covers(a, p) }) {
			out = append(out, fmt.Sprintf("%s is accepted but not in spec.apiServer.allowedCIDRs (wider than the blueprint)", p))
		}
	}
	for _, a := range f.Allowed {
		if !slices.ContainsFunc(st.Allowed, func(p netip.Prefix) bool { return covers(p, a) }) {
			out = append(out, fmt.Sprintf("%s of spec.apiServer.allowedCIDRs is not accepted (its clients are locked out)", a))
		}
	}
	if !st.Loopback {
		out = append(out, "loopback is not accepted (secprov and the control plane reach the API server through lo)")
	}
	return out
}

// covers reports whether outer contains every address of inner.
func covers(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
