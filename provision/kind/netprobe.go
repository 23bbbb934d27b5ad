package kind

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"secprov.dev/secprov/hardening/verify"
	"secprov.dev/secprov/provision/kind/images"
)

// ProbeImage implements verify.NodeAccess: the offline set's probe image,
// loaded into every node's containerd when it is not there yet, named by
// its digest (so the image guardrail admits it where digests are
// required). The set is read from `secprov images build`'s manifest.
func (t *Target) ProbeImage(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.probeImage != "" {
		return t.probeImage, nil
	}
	set, err := images.Offline(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %v", verify.ErrNoProbeImage, err)
	}
	if set.Probe.Repository == "" {
		return "", fmt.Errorf("%w: the offline set has none; run `secprov images build`", verify.ErrNoProbeImage)
	}
	nodes, err := listNodes(ctx, t.rec.Name, t.rec.Environment)
	if err != nil {
		return "", err
	}
	var ref string
	for _, n := range nodes {
		r, err := loadByDigest(ctx, n.Name, set.Probe)
		if err != nil {
			return "", fmt.Errorf("loading %s into node %s: %w", set.Probe, n.Name, err)
		}
		if ref != "" && r != ref {
			return "", fmt.Errorf("node %s names %s %s, another node %s", n.Name, set.Probe, r, ref)
		}
		ref = r
	}
	if ref == "" {
		return "", fmt.Errorf("cluster %s has no nodes to load %s into", t.rec.Name, set.Probe)
	}
	t.probeImage = ref
	return ref, nil
}

// loadByDigest makes sure node's containerd holds ref, importing it from
// the Docker engine when it does not, and returns its digest reference
// (repository@sha256:…), which it creates too. The image is pinned so
// kubelet's image GC keeps it.
func loadByDigest(ctx context.Context, node string, ref images.Ref) (string, error) {
	digest, err := nodeImageDigest(ctx, node, ref.String())
	if err != nil {
		return "", err
	}
	changed := false // pin only what this call imported or named
	if digest == "" {
		changed = true
		save := exec.CommandContext(ctx, dockerCommand, "save", ref.String())
		out, err := save.StdoutPipe()
		if err != nil {
			return "", err
		}
		var stderr strings.Builder
		save.Stderr = &stderr
		if err := save.Start(); err != nil {
			return "", err
		}
		_, ierr := dockerIn(ctx, out, "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import", "--digests", "-")
		werr := save.Wait()
		if werr != nil {
			return "", fmt.Errorf("docker save %s: %w: %s", ref, werr, strings.TrimSpace(stderr.String()))
		}
		if ierr != nil {
			return "", ierr
		}
		if digest, err = nodeImageDigest(ctx, node, ref.String()); err != nil {
			return "", err
		}
		if digest == "" {
			return "", fmt.Errorf("%s is not in the node's containerd after the import", ref)
		}
	}
	byDigest := ref.Repository + "@" + digest
	have, err := nodeImageDigest(ctx, node, byDigest)
	if err != nil {
		return "", err
	}
	if have == "" {
		changed = true
		if _, err := nodeExec(ctx, node, "ctr", "-n", "k8s.io", "images", "tag", ref.String(), byDigest); err != nil {
			return "", err
		}
	}
	if !changed {
		return byDigest, nil // loaded and pinned by an earlier verify
	}
	for _, name := range []string{ref.String(), byDigest} {
		if _, err := nodeExec(ctx, node, "ctr", "-n", "k8s.io", "images", "label", name, "io.cri-containerd.pinned=pinned"); err != nil {
			return "", err
		}
	}
	return byDigest, nil
}

// nodeImageDigest is the manifest digest containerd in node has for the
// image named name ("" when it has none).
func nodeImageDigest(ctx context.Context, node, name string) (string, error) {
	out, err := nodeExec(ctx, node, "ctr", "-n", "k8s.io", "images", "ls", "name=="+name)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		if len(f) >= 3 && f[0] == name && strings.HasPrefix(f[2], "sha256:") {
			return f[2], nil
		}
	}
	return "", nil
}

// OutsideAddr implements verify.NodeAccess: the gateway of the cluster's
// Docker network, an address of this machine that the nodes route to
// directly and that is no node's.
func (t *Target) OutsideAddr(ctx context.Context) (netip.Addr, error) {
	gw, _, err := networkIPv4(ctx, NetworkName(t.rec.Name))
	return gw, err
}

// networkIPv4 is a Docker network's IPv4 gateway (this machine's address
// on it) and subnet.
func networkIPv4(ctx context.Context, network string) (netip.Addr, netip.Prefix, error) {
	out, err := docker(ctx, "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}},{{.Subnet}} {{end}}", network)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("network %s: %w", network, err)
	}
	for _, f := range strings.Fields(string(out)) {
		gw, subnet, _ := strings.Cut(f, ",")
		a, aerr := netip.ParseAddr(gw)
		p, perr := netip.ParsePrefix(subnet)
		if aerr == nil && perr == nil && a.Is4() && p.Contains(a) {
			return a, p.Masked(), nil
		}
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("network %s has no IPv4 gateway and subnet (%q)", network, strings.TrimSpace(string(out)))
}
