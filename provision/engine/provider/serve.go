package provider

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// secretEnv are variables the provider never needs and must not pass on.
var secretEnv = []string{
	"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN", "SECPROV_PASSPHRASE",
}

// PluginName is the executable name under which the engine starts the
// provider; the secprov binary switches to Serve when invoked by this name.
const PluginName = "pulumi-resource-" + Package

// Serve runs the provider plugin until the engine shuts it down: it prints
// the gRPC port on stdout (the plugin handshake) and serves reg. It reads
// the engine's arguments from os.Args (provider.Main's contract), so call it
// only from a process the engine started. version is reported to the engine
// and should be semver; anything else is served as 0.0.0-dev.
//
// Nothing else may write to stdout while Serve runs.
func Serve(ctx context.Context, reg *Registry, version string) error {
	if reg == nil {
		return fmt.Errorf("serving %s: no resource types registered in this build", PluginName)
	}
	version = pluginVersion(version)
	// The engine hands its whole environment to plugins, secrets included.
	// Resource types start long-lived daemons (etcd, kube-apiserver) that
	// would keep them in /proc/<pid>/environ for the life of the cluster.
	for _, v := range secretEnv {
		_ = os.Unsetenv(v)
	}
	// If the engine dies (SIGKILL) we would otherwise linger until the
	// five-minute health check notices; ask the kernel to interrupt us.
	exitWithParent()
	return pprovider.MainContext(ctx, PluginName, func(host *pprovider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		var logs LogSink
		if host != nil {
			logs = func(urn string) *slog.Logger { return slog.New(&hostHandler{host: host, urn: urn}) }
		}
		return NewServer(reg, version, logs), nil
	})
}

// pluginVersion turns secprov's version into the strict semver the engine
// expects ("v1.2" -> "1.2.0"); development builds report 0.0.0-dev.
func pluginVersion(v string) string {
	if sv, err := semver.ParseTolerant(v); err == nil {
		return sv.String()
	}
	return "0.0.0-dev"
}

// hostHandler sends log records to the engine as diagnostics of one
// resource, so they appear with that resource in the engine's output.
type hostHandler struct {
	host   *pprovider.HostClient
	urn    string
	prefix string // group names, dotted
	attrs  []string
}

func (h *hostHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *hostHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a)
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + h.prefix + a.Key + "=" + a.Value.String())
		return true
	})
	// An error-severity diagnostic would fail the whole update; a resource
	// type's error log is information, the error it returns is what fails.
	sev := diag.Debug
	switch {
	case r.Level >= slog.LevelWarn:
		sev = diag.Warning
	case r.Level >= slog.LevelInfo:
		sev = diag.Info
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return h.host.Log(ctx, sev, resource.URN(h.urn), b.String())
}

func (h *hostHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]string(nil), h.attrs...)
	for _, a := range attrs {
		c.attrs = append(c.attrs, h.prefix+a.Key+"="+a.Value.String())
	}
	return &c
}

func (h *hostHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}
