package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"secprov.dev/secprov/hardening"
	"secprov.dev/secprov/provision/engine/provider"
	"secprov.dev/secprov/provision/paths"
)

// FieldManager owns the fields secprov applies with server-side apply.
const FieldManager = "secprov"

type bootstrapIn struct {
	Dir string `json:"dir" secprov:"replace"`
	// Objects are the rendered in-cluster objects (JSON), in apply order.
	Objects []string `json:"objects"`
}

type bootstrapOut struct {
	Applied []string `json:"applied"` // kind/namespace/name
}

// gvrs maps the kinds hardening renders to their API resources, so no
// discovery round trip is needed.
var gvrs = map[string]schema.GroupVersionResource{
	"v1/Namespace":                                    {Version: "v1", Resource: "namespaces"},
	"v1/ServiceAccount":                               {Version: "v1", Resource: "serviceaccounts"},
	"v1/ConfigMap":                                    {Version: "v1", Resource: "configmaps"},
	"networking.k8s.io/v1/NetworkPolicy":              {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	"cilium.io/v2/CiliumNetworkPolicy":                {Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"},
	"cilium.io/v2/CiliumClusterwideNetworkPolicy":     {Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"rbac.authorization.k8s.io/v1/ClusterRole":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": {Group: "admissionregistration.k8s.io", Version: "v1",
		Resource: "validatingadmissionpolicies"},
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": {Group: "admissionregistration.k8s.io", Version: "v1",
		Resource: "validatingadmissionpolicybindings"},
}

func objectRef(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s/%s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
}

func decodeObjects(objs []string) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON([]byte(o)); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		if _, ok := gvrs[u.GetAPIVersion()+"/"+u.GetKind()]; !ok {
			return nil, fmt.Errorf("object %d: unsupported kind %s %s", i, u.GetAPIVersion(), u.GetKind())
		}
		out[i] = u
	}
	return out, nil
}

func bootstrapClient(dir string) (dynamic.Interface, error) {
	// Bootstrap runs as the system:masters identity: it creates the very
	// binding that gives secprov's admin its rights.
	cfg, err := clientcmd.BuildConfigFromFlags("", paths.NewLayout(dir).SuperAdminKubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 30 * time.Second
	cfg.UserAgent = "secprov-bootstrap"
	// A few dozen small applies in a row: client-go's default 5 QPS would
	// add a second of sleeping for nothing.
	cfg.QPS, cfg.Burst = 100, 200
	return dynamic.NewForConfig(cfg)
}

// apply server-side applies objects in order, retrying briefly while the
// API server finishes starting (namespaces controller, RBAC bootstrap).
func apply(ctx context.Context, dc dynamic.Interface, objs []*unstructured.Unstructured) ([]string, error) {
	var refs []string
	for _, u := range objs {
		gvr := gvrs[u.GetAPIVersion()+"/"+u.GetKind()]
		data, err := json.Marshal(u)
		if err != nil {
			return refs, err
		}
		var ri dynamic.ResourceInterface = dc.Resource(gvr)
		if ns := u.GetNamespace(); ns != "" {
			ri = dc.Resource(gvr).Namespace(ns)
		}
		force := true
		err = retry(ctx, func() error {
			_, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
			return err
		})
		if err != nil {
			return refs, fmt.Errorf("apply %s: %w", objectRef(u), err)
		}
		refs = append(refs, objectRef(u))
	}
	return refs, nil
}

// preflight dry-runs the cluster-scoped admission objects (guardrail
// policies and bindings) before anything is applied: the API server
// compiles a policy's CEL when it validates it, so a policy it would refuse
// is found while none of the set has changed. A set of guardrails applies
// whole or not at all.
func preflight(ctx context.Context, dc dynamic.Interface, objs []*unstructured.Unstructured) error {
	var errs []error
	for _, u := range objs {
		if u.GetAPIVersion() != "admissionregistration.k8s.io/v1" {
			continue
		}
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		force := true
		err = retry(ctx, func() error {
			_, err := dc.Resource(gvrs[u.GetAPIVersion()+"/"+u.GetKind()]).Patch(ctx, u.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: FieldManager, Force: &force, DryRun: []string{metav1.DryRunAll}})
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", objectRef(u), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the API server refuses part of the admission guardrails, so none was applied (this is a bug in secprov; please report it with this message): %w", errors.Join(errs...))
	}
	return nil
}

// prune deletes objects secprov applied before and no longer wants.
// Namespaces are never deleted: they may hold workloads.
func prune(ctx context.Context, dc dynamic.Interface, old, cur []*unstructured.Unstructured) error {
	want := map[string]bool{}
	for _, u := range cur {
		want[objectRef(u)] = true
	}
	var errs []error
	for _, u := range slices.Backward(old) {
		if want[objectRef(u)] || u.GetKind() == "Namespace" || u.GetKind() == "ServiceAccount" {
			continue
		}
		gvr := gvrs[u.GetAPIVersion()+"/"+u.GetKind()]
		var ri dynamic.ResourceInterface = dc.Resource(gvr)
		if ns := u.GetNamespace(); ns != "" {
			ri = dc.Resource(gvr).Namespace(ns)
		}
		if err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", objectRef(u), err))
		}
	}
	return errors.Join(errs...)
}

func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		if !apierrors.IsNotFound(err) && !apierrors.IsServiceUnavailable(err) && !apierrors.IsTimeout(err) &&
			!apierrors.IsServerTimeout(err) && !apierrors.IsTooManyRequests(err) && !apierrors.IsForbidden(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func runBootstrap(ctx context.Context, in, old bootstrapIn) (bootstrapOut, error) {
	objs, err := decodeObjects(in.Objects)
	if err != nil {
		return bootstrapOut{}, err
	}
	dc, err := bootstrapClient(in.Dir)
	if err != nil {
		return bootstrapOut{}, err
	}
	if err := preflight(ctx, dc, objs); err != nil {
		return bootstrapOut{}, err
	}
	refs, err := apply(ctx, dc, objs)
	if err != nil {
		return bootstrapOut{Applied: refs}, err
	}
	if len(old.Objects) > 0 {
		prev, err := decodeObjects(old.Objects)
		if err != nil {
			return bootstrapOut{Applied: refs}, err
		}
		if err := prune(ctx, dc, prev, objs); err != nil {
			return bootstrapOut{Applied: refs}, err
		}
	}
	return bootstrapOut{Applied: refs}, nil
}

// BootstrapType is the engine resource type of a cluster's in-cluster
// objects. The token predates other providers; stacks store it, so it stays.
const BootstrapType = "secprov:local:Bootstrap"

// BootstrapResourceType applies a cluster's in-cluster objects (namespaces,
// RBAC, network policies, …) with server-side apply through the admin
// kubeconfig in the cluster directory, prunes what a new render dropped,
// and shows drift of the live objects as a change. Every provider
// declares it once its API server is ready.
func BootstrapResourceType() provider.ResourceType { return bootstrapResourceType().ResourceType() }

func bootstrapResourceType() provider.TypedResourceType[bootstrapIn, bootstrapOut] {
	return provider.TypedResourceType[bootstrapIn, bootstrapOut]{
		Token: BootstrapType,
		Create: func(ctx context.Context, req provider.TypedRequest[bootstrapIn, bootstrapOut]) (string, bootstrapOut, error) {
			out, err := runBootstrap(ctx, req.Inputs, bootstrapIn{})
			return "bootstrap", out, err
		},
		// Objects changed by hand (a deleted policy, a relabelled namespace)
		// show as changes, so `up` puts them back.
		Diff: func(ctx context.Context, req provider.TypedRequest[bootstrapIn, bootstrapOut], d provider.Diff) (provider.Diff, error) {
			if d.Changed() {
				return d, nil
			}
			for _, i := range drifted(ctx, req.Inputs.Dir, req.Inputs.Objects) {
				d.Changes = append(d.Changes, provider.Change{Path: fmt.Sprintf("objects[%d]", i), Kind: provider.Update})
			}
			return d, nil
		},
		Update: func(ctx context.Context, req provider.TypedRequest[bootstrapIn, bootstrapOut]) (bootstrapOut, error) {
			return runBootstrap(ctx, req.Inputs, req.OldInputs)
		},
		// The cluster is being torn down or the objects are being replaced
		// by a new Bootstrap: nothing to do either way.
		Delete: func(context.Context, provider.TypedRequest[bootstrapIn, bootstrapOut]) error { return nil },
	}
}

// RenderObjects renders the blueprint's in-cluster objects as JSON strings.
func RenderObjects(objs []hardening.Object) ([]string, error) {
	out := make([]string, len(objs))
	for i, o := range objs {
		data, err := json.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		out[i] = string(data)
	}
	return out, nil
}

// drifted returns the indexes of objects whose live state no longer has
// what secprov applied (deleted, relabelled, a policy edited by hand), so
// `up` re-applies them. An unreachable API server reports nothing: the
// Process resources show and repair that first.
func drifted(ctx context.Context, dir string, objs []string) []int {
	want, err := decodeObjects(objs)
	if err != nil {
		return nil
	}
	dc, err := bootstrapClient(dir)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []int
	for i, u := range want {
		gvr := gvrs[u.GetAPIVersion()+"/"+u.GetKind()]
		var ri dynamic.ResourceInterface = dc.Resource(gvr)
		if ns := u.GetNamespace(); ns != "" {
			ri = dc.Resource(gvr).Namespace(ns)
		}
		live, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, i)
		case err != nil:
			return nil // cannot tell; do not guess
		case !containsApplied(u.Object, live.Object):
			out = append(out, i)
		}
	}
	return out
}

// containsApplied reports whether live holds every field secprov applied:
// maps by key (extra live fields are fine: defaults, status, other
// managers), lists and scalars by equality. Of metadata only the labels
// count.
func containsApplied(applied, live map[string]any) bool {
	for k, v := range applied {
		if k == "metadata" {
			am, _ := v.(map[string]any)
			lm, _ := live[k].(map[string]any)
			al, _ := am["labels"].(map[string]any)
			ll, _ := lm["labels"].(map[string]any)
			if !subset(al, ll) {
				return false
			}
			continue
		}
		if k == "status" {
			continue
		}
		if !subsetValue(v, live[k]) {
			return false
		}
	}
	return true
}

func subset(a, b map[string]any) bool {
	for k, v := range a {
		if !subsetValue(v, b[k]) {
			return false
		}
	}
	return true
}

func subsetValue(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return len(av) == 0 && b == nil
		}
		return subset(av, bv)
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return len(av) == 0 && b == nil
		}
		for i := range av {
			if !subsetValue(av[i], bv[i]) {
				return false
			}
		}
		return true
	case nil:
		return true
	default:
		return fmt.Sprint(a) == fmt.Sprint(b)
	}
}
