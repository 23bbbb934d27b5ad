package cluster

import (
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// AdminAPI is a cluster's API as verify reaches it: the REST config and
// clientset of its admin kubeconfig, opened once. Targets of every
// provider embed it for verify.Target's RESTConfig and Client.
type AdminAPI struct {
	Kubeconfig string

	once   sync.Once
	cfg    *rest.Config
	client kubernetes.Interface
	err    error
}

// NewAdminAPI opens nothing yet: the kubeconfig is read on first use.
func NewAdminAPI(kubeconfig string) *AdminAPI { return &AdminAPI{Kubeconfig: kubeconfig} }

// RESTConfig implements verify.Target.
func (a *AdminAPI) RESTConfig() (*rest.Config, error) {
	a.once.Do(func() {
		a.cfg, a.err = clientcmd.BuildConfigFromFlags("", a.Kubeconfig)
		if a.err != nil {
			return
		}
		a.cfg.Timeout = 15 * time.Second
		a.cfg.UserAgent = "secprov-verify"
		// The suite sends a few dozen requests from concurrent checks;
		// client-go's default 5 QPS would make it wait on itself for
		// seconds. The API server's own limits still apply.
		a.cfg.QPS, a.cfg.Burst = 100, 200
		// Checks send deprecated or refused requests on purpose (dry-run
		// externalIPs, pods that break Pod Security); the API server's
		// warnings about them are expected, not news for the user.
		a.cfg.WarningHandler = rest.NoWarnings{}
		a.client, a.err = kubernetes.NewForConfig(a.cfg)
	})
	if a.err != nil {
		return nil, a.err
	}
	return rest.CopyConfig(a.cfg), nil
}

// Client implements verify.Target.
func (a *AdminAPI) Client() (kubernetes.Interface, error) {
	if _, err := a.RESTConfig(); err != nil {
		return nil, err
	}
	return a.client, nil
}
