package vaultres

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestReviewerDrift covers when Diff asks for a new reviewer token: the
// inputs to that decision are the live service account and the state.
func TestReviewerDrift(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{UID: types.UID("uid-1")}}
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name  string
		sa    *corev1.ServiceAccount
		state KubernetesAuthOutputs
		drift bool
	}{
		{"fresh token of the same account", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: at(300 * 24 * time.Hour)}, false},
		{"just outside the renewal window", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: at(ReviewerRenewBefore + time.Hour)}, false},
		{"expires within the renewal window", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: at(ReviewerRenewBefore - time.Hour)}, true},
		{"already expired", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: at(-time.Hour)}, true},
		{"account recreated", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-0", ReviewerTokenExpires: at(300 * 24 * time.Hour)}, true},
		{"account gone or unreadable", nil, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: at(300 * 24 * time.Hour)}, true},
		// State written by the Secret-based version has neither field.
		{"state from before TokenRequest", sa, KubernetesAuthOutputs{}, true},
		{"expiry unparsable", sa, KubernetesAuthOutputs{ReviewerServiceAccountUID: "uid-1", ReviewerTokenExpires: "next year"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := reviewerDrift(tt.sa, tt.state, now)
			if (why != "") != tt.drift {
				t.Errorf("reviewerDrift = %q, want drift %v", why, tt.drift)
			}
		})
	}
}
