package app

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"secprov.dev/secprov/provision"
	"secprov.dev/secprov/provision/engine"
	"secprov.dev/secprov/provision/paths"
)

// checkClusterNames refuses --cluster values that cannot name a cluster,
// before anything looks at the file system: a name becomes a directory
// in the state dir, so "../x" must never reach it.
func checkClusterNames(names []string) error {
	for _, n := range names {
		if err := paths.CheckClusterName(n); err != nil {
			return usageErr(fmt.Errorf("--cluster: %w; see secprov status for the clusters there are", err))
		}
	}
	return nil
}

// checkOnly refuses --only values that can match no blueprint: cluster
// names and environments are both DNS labels.
func checkOnly(only []string) error {
	for _, o := range only {
		if paths.CheckClusterName(o) != nil {
			return usageErr(fmt.Errorf("--only %s is neither a cluster name nor an environment: both are DNS labels (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)", quoteArg(o)))
		}
	}
	return nil
}

// checkClustersKnown refuses, before the toolchain is obtained, names of
// clusters secprov has no trace of: neither a directory nor a stack in a
// file backend. For other backends a name without a directory is
// assumed to exist; the engine decides.
func checkClustersKnown(stateDir, backend string, names []string) error {
	var unknown []string
	for _, n := range names {
		dir, err := paths.ClusterDir(stateDir, n)
		if err != nil {
			return usageErr(err)
		}
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			continue
		}
		if engine.StackAbsent(stateDir, backend, n) {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return usageErr(fmt.Errorf("%w %s in %s (nothing was changed): see secprov status", provision.ErrUnknownCluster, strings.Join(unknown, ", "), stateDir))
}

// quoteArg quotes a command-line value for a message, escaping control
// characters and cutting a long one short.
func quoteArg(s string) string {
	const max = 70
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
