package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"secprov.dev/secprov/blueprints/v1alpha1"
)

// Where Cilium's transparent encryption shows on a live cluster: the
// agents' configuration, and the WireGuard device each agent creates in
// its node's network namespace.
const (
	ciliumConfigMap   = "cilium-config"
	ciliumWireGuardIf = "/sys/class/net/cilium_wg0"
)

// checkTransparentEncryption (SP-NET-005): pod traffic between nodes is
// encrypted. The agents' live configuration must turn WireGuard or IPsec
// on, and for WireGuard every node must hold the device the agent makes.
// It fails where the blueprint resolved to none (a kernel without
// WireGuard): an exception excuses that, nothing skips it.
func checkTransparentEncryption(ctx context.Context, t Target) Outcome {
	var r findings
	asked := t.Info().Spec.Network.TransparentEncryption
	cs, err := t.Client()
	if err != nil {
		return Errorf("admin client: %v", err)
	}
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return Errorf("list nodes: %v", err)
	}
	cmEv := Evidence{Object: "ConfigMap/kube-system/" + ciliumConfigMap, Field: "enable-wireguard, enable-ipsec", Want: "one of them true"}
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, ciliumConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cmEv.Got = "missing"
		r.fail(cmEv, "Cilium's configuration is missing, so nothing encrypts pod traffic between nodes")
		return r.outcome("")
	case err != nil:
		return Errorf("get %s: %v", cmEv.Object, err)
	}
	wg, ipsec := cm.Data["enable-wireguard"] == "true", cm.Data["enable-ipsec"] == "true"
	cmEv.Got = fmt.Sprintf("enable-wireguard %s, enable-ipsec %s", orNone(cm.Data["enable-wireguard"]), orNone(cm.Data["enable-ipsec"]))
	mode := v1alpha1.TransparentEncryptionNone
	switch {
	case wg:
		mode = v1alpha1.TransparentEncryptionWireGuard
	case ipsec:
		mode = v1alpha1.TransparentEncryptionIPsec
	}
	if asked != "" && asked != mode {
		r.fail(Evidence{Object: "Blueprint", Field: "spec.network.transparentEncryption", Want: asked, Got: mode},
			fmt.Sprintf("the blueprint asks for %s and Cilium runs with %s", asked, mode))
	}
	switch {
	case wg, ipsec:
		r.ok(cmEv)
	default:
		why := fmt.Sprintf("pod traffic between the %d nodes crosses the node network unencrypted (VXLAN): Cilium runs with neither WireGuard nor IPsec", len(nodes))
		if asked == "" || asked == v1alpha1.TransparentEncryptionNone {
			why += fmt.Sprintf(" (spec.network.transparentEncryption resolved to %s: the nodes' kernel offered no mode secprov can turn on)", v1alpha1.TransparentEncryptionNone)
		}
		r.fail(cmEv, why)
	}
	if wg {
		for _, n := range nodes {
			ev := Evidence{Object: "Node/" + n.Name, Field: ciliumWireGuardIf, Want: "present (the agent's WireGuard device)"}
			_, err := t.NodeStat(ctx, n.Name, ciliumWireGuardIf)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				ev.Got = "missing"
				r.fail(ev, fmt.Sprintf("node %s has no WireGuard device: its agent does not encrypt", n.Name))
			case err != nil:
				r.errorf("stat %s on node %s: %v", ciliumWireGuardIf, n.Name, err)
			default:
				ev.Got = "present"
				r.ok(ev)
			}
		}
	}
	return r.outcome(fmt.Sprintf("Cilium encrypts pod traffic between the %d nodes with %s", len(nodes), mode))
}
