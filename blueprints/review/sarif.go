package review

import (
	"io"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
)

const (
	// InformationURI is where the SARIF tool entry points users.
	InformationURI = "https://secprov.dev/docs/review"
	// LoadErrorRule is the synthetic rule load errors are reported under
	// in SARIF, where every result needs a rule.
	LoadErrorRule = blueprints.LoadErrorRule
)

// WriteSARIF writes the report as a SARIF 2.1.0 log for GitHub code
// scanning: every review rule (and SP-LOAD-001 for load errors) with help
// and a security-severity, and one result per finding and load error, at
// its line in the blueprint file.
func WriteSARIF(w io.Writer, r *Report, opts WriteOptions) error {
	ctls := append(Rules(), blueprints.Control{
		ID: LoadErrorRule, Title: "Blueprint files load", Severity: blueprints.SeverityHigh,
		Rationale:   "A blueprint that does not load cannot be reviewed or provisioned.",
		Remediation: "Fix the reported YAML or schema problem at the given line.",
	})
	run := sarif.NewRun(sarif.Tool{Name: "secprov", InformationURI: InformationURI, Version: opts.ToolVersion}, opts.SrcRoot, ctls)
	for _, e := range r.Errors {
		err := run.Add(sarif.Result{
			Rule: LoadErrorRule, Level: "error", Message: e.Message,
			Location: sarif.Location{File: e.File, Line: e.Line, Column: e.Column},
			Identity: []string{string(LoadErrorRule), e.File, sarif.WithoutLineNumbers(e.Message)},
		})
		if err != nil {
			return err
		}
	}
	for _, f := range r.Findings {
		props := map[string]string{"severity": f.Severity.String(), "blueprint": f.Blueprint, "path": f.Path}
		if f.Exception != nil {
			props["exceptionExpires"] = f.Exception.Expires
		}
		err := run.Add(sarif.Result{
			Rule: f.Rule, Level: sarif.Level(f.Severity), Message: f.Path + ": " + f.Message,
			Location:   sarif.Location{File: f.File, Line: f.Line, Column: f.Column},
			Identity:   []string{string(f.Rule), f.Blueprint, f.Path},
			Properties: props,
		})
		if err != nil {
			return err
		}
	}
	return run.Encode(w)
}
