package evidence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

var (
	crdGVR           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	clusterReportGVR = orv1alpha1.SchemeGroupVersion.WithResource("clusterreports")
)

// clusterReportsCRD is the smallest definition that lets the API server
// store ClusterReports, for a cluster without OpenReports installed. Its
// schema keeps every field; where OpenReports' own definition is
// installed, it is used as it is and never replaced.
func clusterReportsCRD() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": clusterReportGVR.Resource + "." + clusterReportGVR.Group,
			"labels": map[string]any{"app.kubernetes.io/managed-by": "secprov"}},
		"spec": map[string]any{
			"group": clusterReportGVR.Group, "scope": "Cluster",
			"names": map[string]any{"plural": "clusterreports", "singular": "clusterreport", "kind": "ClusterReport", "listKind": "ClusterReportList"},
			"versions": []any{map[string]any{"name": clusterReportGVR.Version, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
}

// ApplyClusterReport stores rep in the cluster cfg reaches (server-side
// apply, field manager secprov), defining ClusterReports first when the
// cluster does not serve them.
func ApplyClusterReport(ctx context.Context, cfg *rest.Config, rep *orv1alpha1.ClusterReport) error {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crd := clusterReportsCRD()
	if _, err := dc.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := dc.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("define ClusterReports (%s): %w", crd.GetName(), err)
		}
	} else if err != nil {
		return fmt.Errorf("read the ClusterReport definition: %w", err)
	}
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	force := true
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = dc.Resource(clusterReportGVR).Patch(ctx, rep.Name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "secprov", Force: &force})
		if err == nil || !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			break
		}
		select { // the new definition is not served yet
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("apply ClusterReport %s: %w", rep.Name, err)
	}
	return nil
}
