package vault

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StateMount is the transit mount that holds the keys encrypting
// secprov's state secrets (spec.state.secretsProvider: vault), one key per
// cluster, apart from the clusters' own KMS mounts so a cluster's
// teardown and its state's key never touch each other's mount.
const StateMount = "secprov-state"

// StateTokenPeriod is the state token's period: `up` and `down` renew it
// (and mint a new one when it has lapsed), so it lasts a period from the
// last of them.
const StateTokenPeriod = 30 * 24 * time.Hour

// StateKey is the transit key that wraps the cluster's state data key.
func (n Names) StateKey() string { return n.Cluster }

// StatePolicy is the policy of the state token: encrypt and decrypt with
// the cluster's state key, nothing else.
func (n Names) StatePolicy() string { return "secprov-" + n.Cluster + "-state" }

// StateTokenRole mints the state token, limited to StatePolicy.
func (n Names) StateTokenRole() string { return "secprov-" + n.Cluster + "-state" }

// StateSecretsURL is the Pulumi secrets provider URL of the cluster's
// state key (Pulumi's hashivault provider, through gocloud.dev).
func (n Names) StateSecretsURL() string {
	return "hashivault://" + n.StateKey() + "?engine=" + StateMount
}

// StatePolicy is the text of the policy named n.StatePolicy().
func StatePolicy(n Names) string {
	return render(fmt.Sprintf("secprov: state secrets of cluster %s.\nEncrypt and decrypt with one transit key; nothing else.", n.Cluster), []rule{
		{path: StateMount + "/encrypt/" + n.StateKey(), caps: []string{"update"}},
		{path: StateMount + "/decrypt/" + n.StateKey(), caps: []string{"update"}},
	})
}

func (n Names) stateToken() roleToken {
	return roleToken{what: "state", cluster: n.Cluster, policy: n.StatePolicy(), policyText: StatePolicy(n),
		role: n.StateTokenRole(), period: StateTokenPeriod}
}

// EnsureStateSecrets creates the cluster's state key (aes256-gcm96, not
// exportable, not deletable) in StateMount and makes sure tokenFile holds
// a live token that can encrypt and decrypt with it and do nothing else.
func (s *Setup) EnsureStateSecrets(ctx context.Context, n Names, tokenFile string) error {
	if n.Cluster == "" || tokenFile == "" {
		return errors.New("vault: state secrets: no cluster or token file given")
	}
	if _, err := s.EnsureTransit(ctx, StateMount, n.StateKey()); err != nil {
		return err
	}
	return s.ensureRoleToken(ctx, n.stateToken(), tokenFile)
}

// DeleteStateSecrets revokes the state token and deletes its role, its
// policy and the state key (and the mount once no key is left). Only for
// a cluster whose state is gone: the key is what decrypts it.
func (s *Setup) DeleteStateSecrets(ctx context.Context, n Names, tokenFile string) error {
	if err := s.deleteRoleToken(ctx, n.stateToken(), tokenFile); err != nil {
		return err
	}
	return s.DeleteTransit(ctx, StateMount, n.StateKey())
}
