//go:build !linux

package provider

// exitWithParent is a no-op where the kernel has no parent-death signal;
// the provider then stops when its health check to the engine fails.
func exitWithParent() {}
