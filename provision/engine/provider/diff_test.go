package provider

import (
	"reflect"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func pm(m map[string]any) resource.PropertyMap { return resource.NewPropertyMapFromMap(m) }

func TestComputeDiff(t *testing.T) {
	secret := func(v any) resource.PropertyValue { return resource.MakeSecret(resource.NewPropertyValue(v)) }
	unknown := resource.MakeComputed(resource.NewStringProperty(""))
	tests := []struct {
		name    string
		olds    resource.PropertyMap
		news    resource.PropertyMap
		replace []string
		want    []Change
	}{
		{
			name: "identical inputs: no change",
			olds: pm(map[string]any{"path": "/a", "content": "x", "mode": 384.0}),
			news: pm(map[string]any{"path": "/a", "content": "x", "mode": 384.0}),
		},
		{
			name: "one field updates in place",
			olds: pm(map[string]any{"path": "/a", "content": "x"}),
			news: pm(map[string]any{"path": "/a", "content": "y"}),
			want: []Change{{Path: "content", Kind: Update}},
		},
		{
			name:    "replace-forcing field replaces",
			olds:    pm(map[string]any{"path": "/a", "content": "x"}),
			news:    pm(map[string]any{"path": "/b", "content": "x"}),
			replace: []string{"path"},
			want:    []Change{{Path: "path", Kind: Update, Replace: true}},
		},
		{
			name:    "added and removed properties",
			olds:    pm(map[string]any{"path": "/a", "old": "x"}),
			news:    pm(map[string]any{"path": "/a", "new": "y"}),
			replace: []string{"new"},
			want:    []Change{{Path: "new", Kind: Add, Replace: true}, {Path: "old", Kind: Delete}},
		},
		{
			name: "null and absent are the same",
			olds: pm(map[string]any{"path": "/a", "x": nil}),
			news: pm(map[string]any{"path": "/a"}),
		},
		{
			name:    "nested object names the leaf, nested replace path applies",
			olds:    pm(map[string]any{"spec": map[string]any{"port": 1.0, "flags": map[string]any{"a": "1", "b": "2"}}}),
			news:    pm(map[string]any{"spec": map[string]any{"port": 2.0, "flags": map[string]any{"a": "1", "b": "3"}}}),
			replace: []string{"spec.port"},
			want:    []Change{{Path: "spec.flags.b", Kind: Update}, {Path: "spec.port", Kind: Update, Replace: true}},
		},
		{
			name:    "whole object added contains a replace path",
			olds:    pm(map[string]any{"a": "x"}),
			news:    pm(map[string]any{"a": "x", "spec": map[string]any{"port": 1.0}}),
			replace: []string{"spec.port"},
			want:    []Change{{Path: "spec", Kind: Add, Replace: true}},
		},
		{
			name: "keys needing quotes",
			olds: pm(map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "a"}}),
			news: pm(map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "b"}}),
			want: []Change{{Path: `labels["app.kubernetes.io/name"]`, Kind: Update}},
		},
		{
			name: "arrays of equal length compare per element",
			olds: pm(map[string]any{"args": []any{"--a", "--b", "--c"}}),
			news: pm(map[string]any{"args": []any{"--a", "--x", "--c"}}),
			want: []Change{{Path: "args[1]", Kind: Update}},
		},
		{
			name: "array length change is one change",
			olds: pm(map[string]any{"args": []any{"--a"}}),
			news: pm(map[string]any{"args": []any{"--a", "--b"}}),
			want: []Change{{Path: "args", Kind: Update}},
		},
		{
			name: "number type is compared by value",
			olds: pm(map[string]any{"n": 1.0}),
			news: pm(map[string]any{"n": 1.0}),
		},
		{
			name: "same secret value: no change",
			olds: resource.PropertyMap{"token": secret("s")},
			news: resource.PropertyMap{"token": secret("s")},
		},
		{
			name: "changed secret value",
			olds: resource.PropertyMap{"token": secret("s")},
			news: resource.PropertyMap{"token": secret("t")},
			want: []Change{{Path: "token", Kind: Update}},
		},
		{
			name:    "value only became secret: in-place update even on a replace key",
			olds:    resource.PropertyMap{"token": resource.NewStringProperty("s")},
			news:    resource.PropertyMap{"token": secret("s")},
			replace: []string{"token"},
			want:    []Change{{Path: "token", Kind: Update}},
		},
		{
			name:    "unknown new value counts as a change",
			olds:    pm(map[string]any{"path": "/a", "content": "x"}),
			news:    resource.PropertyMap{"path": resource.NewStringProperty("/a"), "content": unknown},
			replace: []string{"path"},
			want:    []Change{{Path: "content", Kind: Update}},
		},
		{
			name: "unknown inside an object blames the field",
			olds: pm(map[string]any{"spec": map[string]any{"a": "1", "b": "2"}}),
			news: resource.PropertyMap{"spec": resource.NewObjectProperty(resource.PropertyMap{
				"a": resource.NewStringProperty("1"), "b": unknown})},
			want: []Change{{Path: "spec.b", Kind: Update}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ComputeDiff(tt.olds, tt.news, tt.replace)
			if !reflect.DeepEqual(got.Changes, tt.want) {
				t.Errorf("changes = %+v\nwant      %+v", got.Changes, tt.want)
			}
			if got.Changed() != (len(tt.want) > 0) {
				t.Errorf("Changed() = %v", got.Changed())
			}
		})
	}
}

func TestDiffResponse(t *testing.T) {
	tests := []struct {
		name                string
		diff                Diff
		deleteBeforeReplace bool
		want                *pulumirpc.DiffResponse
	}{
		{
			name: "no changes is DIFF_NONE with an authoritative empty detail",
			want: &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE, HasDetailedDiff: true,
				DetailedDiff: map[string]*pulumirpc.PropertyDiff{}},
		},
		{
			name: "update and replace kinds, top-level keys listed once",
			diff: Diff{Changes: []Change{
				{Path: "content", Kind: Update},
				{Path: "spec.a", Kind: Add, Replace: true},
				{Path: "spec.b", Kind: Delete, Replace: true},
				{Path: "x", Kind: Delete},
				{Path: "y", Kind: Add},
				{Path: "path", Kind: Update, Replace: true},
			}},
			deleteBeforeReplace: true,
			want: &pulumirpc.DiffResponse{
				Changes:             pulumirpc.DiffResponse_DIFF_SOME,
				HasDetailedDiff:     true,
				Diffs:               []string{"content", "spec", "x", "y", "path"},
				Replaces:            []string{"spec", "path"},
				DeleteBeforeReplace: true,
				DetailedDiff: map[string]*pulumirpc.PropertyDiff{
					"content": {Kind: pulumirpc.PropertyDiff_UPDATE, InputDiff: true},
					"spec.a":  {Kind: pulumirpc.PropertyDiff_ADD_REPLACE, InputDiff: true},
					"spec.b":  {Kind: pulumirpc.PropertyDiff_DELETE_REPLACE, InputDiff: true},
					"x":       {Kind: pulumirpc.PropertyDiff_DELETE, InputDiff: true},
					"y":       {Kind: pulumirpc.PropertyDiff_ADD, InputDiff: true},
					"path":    {Kind: pulumirpc.PropertyDiff_UPDATE_REPLACE, InputDiff: true},
				},
			},
		},
		{
			name:                "delete-before-replace only when replacing",
			diff:                Diff{Changes: []Change{{Path: "content", Kind: Update}}},
			deleteBeforeReplace: true,
			want: &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, HasDetailedDiff: true,
				Diffs:        []string{"content"},
				DetailedDiff: map[string]*pulumirpc.PropertyDiff{"content": {Kind: pulumirpc.PropertyDiff_UPDATE, InputDiff: true}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffResponse(tt.diff, tt.deleteBeforeReplace)
			if got.Changes != tt.want.Changes || got.HasDetailedDiff != tt.want.HasDetailedDiff ||
				got.DeleteBeforeReplace != tt.want.DeleteBeforeReplace ||
				!reflect.DeepEqual(got.Diffs, tt.want.Diffs) || !reflect.DeepEqual(got.Replaces, tt.want.Replaces) {
				t.Errorf("got  changes=%v diffs=%v replaces=%v dbr=%v\nwant changes=%v diffs=%v replaces=%v dbr=%v",
					got.Changes, got.Diffs, got.Replaces, got.DeleteBeforeReplace,
					tt.want.Changes, tt.want.Diffs, tt.want.Replaces, tt.want.DeleteBeforeReplace)
			}
			if len(got.DetailedDiff) != len(tt.want.DetailedDiff) {
				t.Fatalf("detailed diff = %v, want %v", got.DetailedDiff, tt.want.DetailedDiff)
			}
			for k, w := range tt.want.DetailedDiff {
				g := got.DetailedDiff[k]
				if g == nil || g.Kind != w.Kind || g.InputDiff != w.InputDiff {
					t.Errorf("detailed diff[%s] = %v, want %v", k, g, w)
				}
			}
		})
	}
}

func TestPluginVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":           "1.2.3",
		"1.2":              "1.2.0",
		"v0.4.0-rc.1":      "0.4.0-rc.1",
		"devel":            "0.0.0-dev",
		"devel+abcdef0123": "0.0.0-dev",
		"":                 "0.0.0-dev",
	} {
		if got := pluginVersion(in); got != want {
			t.Errorf("pluginVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
