package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"secprov.dev/secprov/blueprints"
)

// Formats lists the output formats of WriteReports.
var Formats = []string{"text", "json", "junit", "sarif"}

// WriteReports encodes reports in the given format.
func WriteReports(w io.Writer, format string, reps []*Report, verbose bool) error {
	switch format {
	case "text", "":
		return writeText(w, reps, verbose)
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
		return writeSARIF(w, reps)
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

// SARIF for live results: there is no source file, so each result is
// located at the cluster as a logical location.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               blueprints.ControlID `json:"id"`
	ShortDescription sarifText            `json:"shortDescription"`
	Help             sarifText            `json:"help"`
	Properties       map[string]any       `json:"properties"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    blueprints.ControlID `json:"ruleId"`
	Level     string               `json:"level"`
	Kind      string               `json:"kind"`
	Message   sarifText            `json:"message"`
	Locations []sarifLocation      `json:"locations"`
}

type sarifLocation struct {
	LogicalLocations []sarifLogical `json:"logicalLocations"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

func writeSARIF(w io.Writer, reps []*Report) error {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "secprov verify", InformationURI: "https://secprov.dev"}}, Results: []sarifResult{}}
	seen := map[blueprints.ControlID]bool{}
	for _, rep := range reps {
		for _, r := range rep.Results {
			if !seen[r.ID] {
				seen[r.ID] = true
				run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: r.ID, ShortDescription: sarifText{r.Title},
					Help: sarifText{r.Remediation}, Properties: map[string]any{"tags": append([]string{"security"}, r.Refs...), "severity": r.Severity.String()}})
			}
			level, kind := "none", "pass"
			switch r.Status {
			case StatusFail, StatusError:
				level, kind = "error", "fail"
			case StatusWarn:
				level, kind = "warning", "review"
			case StatusSkip:
				kind = "notApplicable"
			}
			msg := r.Reason
			if len(r.Evidence) > 0 {
				msg += " (" + joinEvidence(r.Evidence) + ")"
			}
			run.Results = append(run.Results, sarifResult{RuleID: r.ID, Level: level, Kind: kind, Message: sarifText{msg},
				Locations: []sarifLocation{{LogicalLocations: []sarifLogical{{Name: rep.Cluster, FullyQualifiedName: "cluster/" + rep.Cluster, Kind: "resource"}}}}})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}
