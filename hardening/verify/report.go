package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints"
	"secprov.dev/secprov/internal/sarif"
)

// Formats lists the output formats of WriteReports.
var Formats = []string{"text", "json", "junit", "sarif"}

// WriteOptions tune WriteReports.
type WriteOptions struct {
	// Verbose shows passing checks' reasons and all evidence in text.
	Verbose bool
	// Blueprints are the loaded blueprints of the reported clusters, by
	// cluster name: SARIF locates each result in its cluster's blueprint
	// file and needs them; other formats ignore them.
	Blueprints []*blueprints.Blueprint
	// SrcRoot is the directory SARIF artifact URIs are relative to (the
	// repository root); "" is the working directory.
	SrcRoot string
	// ToolVersion is secprov's version, for SARIF.
	ToolVersion string
}

// WriteReports encodes reports in the given format.
func WriteReports(w io.Writer, format string, reps []*Report, opts WriteOptions) error {
	switch format {
	case "text", "":
		return writeText(w, reps, opts.Verbose)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if len(reps) == 1 {
			return enc.Encode(reps[0])
		}
		return enc.Encode(reps)
	case "junit":
		return writeJUnit(w, reps)
	case "sarif":
		return writeSARIF(w, reps, opts)
	}
	return fmt.Errorf("unknown output format %q: use %s", format, strings.Join(Formats, ", "))
}

var statusMark = map[Status]string{StatusPass: "✓", StatusFail: "✗", StatusError: "!", StatusWarn: "~", StatusSkip: "-"}

func writeText(w io.Writer, reps []*Report, verbose bool) error {
	for _, rep := range reps {
		fmt.Fprintf(w, "Cluster %s (%s, provider %s)\n", rep.Cluster, rep.Environment, rep.Provider)
		area := ""
		for _, r := range rep.Results {
			if a := r.ID.Area(); a != area {
				area = a
				fmt.Fprintf(w, "  %s\n", a)
			}
			fmt.Fprintf(w, "    %s %-13s %s", statusMark[r.Status], r.ID, r.Title)
			if r.Status != StatusPass || verbose {
				fmt.Fprintf(w, " — %s: %s", r.Status, r.Reason)
			}
			fmt.Fprintln(w)
			if r.Status == StatusFail || r.Status == StatusError || verbose {
				for _, e := range r.Evidence {
					fmt.Fprintf(w, "        %s\n", e)
				}
			}
			if (r.Status == StatusFail || r.Status == StatusWarn) && r.Remediation != "" {
				fmt.Fprintf(w, "        fix: %s\n", r.Remediation)
			}
		}
		s := rep.Summary
		fmt.Fprintf(w, "  %d passed, %d failed, %d skipped", s.Passed, s.Failed, s.Skipped)
		if s.Warned > 0 {
			fmt.Fprintf(w, ", %d warnings", s.Warned)
		}
		if s.Errored > 0 {
			fmt.Fprintf(w, ", %d errors", s.Errored)
		}
		fmt.Fprintf(w, " (%s)\n", rep.Duration.Round(time.Millisecond))
	}
	return nil
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, reps []*Report) error {
	var out junitSuites
	for _, rep := range reps {
		s := junitSuite{Name: "secprov verify " + rep.Cluster, Tests: len(rep.Results), Failures: rep.Summary.Failed,
			Errors: rep.Summary.Errored, Skipped: rep.Summary.Skipped, Time: seconds(rep.Duration)}
		for _, r := range rep.Results {
			c := junitCase{Name: string(r.ID) + " " + r.Title, Classname: rep.Cluster, Time: seconds(r.Duration)}
			body := joinEvidence(r.Evidence)
			if r.Remediation != "" && r.Status == StatusFail {
				body += "\nremediation: " + r.Remediation
			}
			switch r.Status {
			case StatusFail:
				c.Failure = &junitMessage{Message: r.Reason, Body: body}
			case StatusError:
				c.Error = &junitMessage{Message: r.Reason, Body: body}
			case StatusSkip:
				c.Skipped = &junitMessage{Message: r.Reason}
			}
			s.Cases = append(s.Cases, c)
		}
		out.Suites = append(out.Suites, s)
	}
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// InformationURI is where verify's SARIF tool entry points users.
const InformationURI = "https://secprov.dev"

// writeSARIF writes the results that need action (fail, error, warn) for
// GitHub code scanning, each located at the line of the cluster's
// blueprint that declares the control's field (or its nearest ancestor
// written there, when the field is a default), with the cluster as a
// logical location. Passes and skips are left out: code scanning would
// show them as alerts, and an alert closes when its result is gone.
func writeSARIF(w io.Writer, reps []*Report, opts WriteOptions) error {
	run := sarif.NewRun(sarif.Tool{Name: "secprov verify", InformationURI: InformationURI, Version: opts.ToolVersion}, opts.SrcRoot, nil)
	byName := map[string]*blueprints.Blueprint{}
	for _, bp := range opts.Blueprints {
		byName[bp.Name()] = bp
	}
	for _, rep := range reps {
		bp := byName[rep.Cluster]
		for _, r := range rep.Results {
			ctl, ok := blueprints.ControlByID(r.ID)
			if !ok {
				ctl = blueprints.Control{ID: r.ID, Title: r.Title, Severity: r.Severity, Remediation: r.Remediation}
			}
			run.AddRule(ctl)
			var level, kind string
			switch r.Status {
			case StatusFail, StatusError:
				level, kind = "error", "fail"
			case StatusWarn:
				level, kind = "warning", "review"
			default:
				continue
			}
			if bp == nil {
				return fmt.Errorf("cluster %s: no blueprint of that name among the loaded files; SARIF locates each result at the blueprint field that declares it, so pass the cluster's blueprint with -f", rep.Cluster)
			}
			field := ctl.Field
			if field == "" {
				field = "spec" // a control no field configures is the spec's as a whole
			}
			pos := bp.PosOf(field)
			msg := r.Reason
			if len(r.Evidence) > 0 {
				msg += " (" + joinEvidence(r.Evidence) + ")"
			}
			err := run.Add(sarif.Result{
				Rule: r.ID, Level: level, Kind: kind, Message: msg,
				Location: sarif.Location{File: bp.Source.File, Line: pos.Line, Column: pos.Column, Cluster: rep.Cluster},
				// Evidence changes from run to run; what is wrong where does not.
				Identity:   []string{"verify", string(r.ID), rep.Cluster, field},
				Properties: map[string]string{"status": string(r.Status), "severity": r.Severity.String(), "cluster": rep.Cluster, "field": field},
			})
			if err != nil {
				return err
			}
		}
	}
	return run.Encode(w)
}
