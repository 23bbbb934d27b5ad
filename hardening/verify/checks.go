package verify

// Checks returns the full suite in report order: exposure and API server
// flags, the other components, etcd, PKI and files, encryption, audit,
// workload protections, isolation. Each check lives in a checks_<area>.go
// file; every control with ByVerify in the catalog has exactly one
// (TestEveryVerifyControlHasOneCheck).
func Checks() []Check {
	var all []Check
	for _, group := range [][]Check{
		apiServerChecks(),
		componentChecks(),
		etcdChecks(),
		pkiChecks(),
		encryptionChecks(),
		auditChecks(),
		podSecurityChecks(),
		rbacChecks(),
		guardrailChecks(),
		networkChecks(),
		netProbeChecks(),
		vaultProbeChecks(),
		nodeChecks(),
		isolationChecks(),
		vaultChecks(),
	} {
		all = append(all, group...)
	}
	return all
}

// needs lists the capabilities a check declares (Check.Needs).
func needs(c ...Capability) []Capability { return c }
