package blueprints

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// chunk is one YAML document's text (or, before the first marker, the
// text before it) and the 1-based line it starts on.
type chunk struct {
	line int
	data []byte
}

// splitDocuments cuts data before every line that starts a YAML document
// ("---" alone or followed by white space). Line numbers are kept so
// errors point into the file.
func splitDocuments(data []byte) []chunk {
	var (
		out   []chunk
		start = 0
		first = 1
		line  = 1
	)
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		if off > start && isDocumentStart(data[off:next]) {
			out = append(out, chunk{line: first, data: data[start:off]})
			start, first = off, line
		}
		off = next
		line++
	}
	return append(out, chunk{line: first, data: data[start:]})
}

func isDocumentStart(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// checkEncoding refuses encodings other than UTF-8 up front: the YAML
// library would otherwise report them without a position.
func checkEncoding(file string, data []byte) *Error {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return &Error{File: file, Pos: Pos{1, 1}, Message: "file is UTF-16 encoded; save it as UTF-8"}
	}
	return nil
}

// checkCharacters finds the first byte YAML does not allow in ch (invalid
// UTF-8, NUL and other control characters) and reports where it is; the
// YAML library would only say that one exists somewhere.
func checkCharacters(file string, ch chunk) *Error {
	line, col := ch.line, 1
	data := ch.data
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var problem string
		switch {
		case r == utf8.RuneError && size <= 1:
			problem = fmt.Sprintf("invalid UTF-8 byte 0x%02X; blueprints must be UTF-8 text", data[i])
		case r == 0:
			problem = "NUL byte; blueprints must be text"
		case r == '\n':
			line, col = line+1, 1
			i += size
			continue
		case r == '\t' || r == '\r' || r == 0x85 || r == 0xFEFF:
		case r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) || r == 0xFFFE || r == 0xFFFF:
			problem = fmt.Sprintf("control character U+%04X is not allowed in YAML", r)
		}
		if problem != "" {
			return &Error{File: file, Pos: Pos{line, col}, Message: problem}
		}
		col++
		i += size
	}
	return nil
}

// shiftLines moves every node of a document parsed from a chunk to its
// line in the file. Aliases are not followed: their targets are nodes of
// the same tree and are shifted once, where they stand.
func shiftLines(root *yaml.Node, by int) {
	if by == 0 {
		return
	}
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Line > 0 {
			n.Line += by
		}
		stack = append(stack, n.Content...)
	}
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// syntaxError turns the YAML library's error for a document starting
// after line offset into a located Error.
func syntaxError(file string, offset int, err error, text []byte) *Error {
	msg := err.Error()
	line := 0
	// yaml reports "yaml: line N: problem" without a column.
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if num, prob, ok := strings.Cut(rest, ": "); ok {
			if _, scanErr := fmt.Sscanf(num, "%d", &line); scanErr == nil {
				msg = prob
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	col := 1
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		// Every document is parsed on its own, so this is also what an
		// alias to an earlier document's anchor gets.
		msg = fmt.Sprintf("alias *%s has no anchor &%s before it in this YAML document (anchors apply within one document)", m[1], m[1])
		line, col = aliasPos(text, m[1])
		return &Error{File: file, Pos: Pos{Line: offset + line, Column: col}, Message: "invalid YAML: " + msg}
	}
	// The YAML parser (unlike its scanner) reports 0-based lines: the line
	// where the enclosing construct started. Convert to 1-based.
	if isParserProblem(msg) || line == 0 {
		line++
	}
	return &Error{File: file, Pos: Pos{Line: offset + line, Column: col}, Message: "invalid YAML: " + msg}
}

// aliasPos finds the first use of alias *name in text (1-based), or 1:1.
func aliasPos(text []byte, name string) (int, int) {
	tok := []byte("*" + name)
	for i, ln := range bytes.Split(text, []byte("\n")) {
		for from := 0; ; {
			j := bytes.Index(ln[from:], tok)
			if j < 0 {
				break
			}
			end := from + j + len(tok)
			if end == len(ln) || bytes.IndexByte([]byte(" \t\r,]}#"), ln[end]) >= 0 {
				return i + 1, utf8.RuneCount(ln[:from+j]) + 1
			}
			from = end
		}
	}
	return 1, 1
}

func isParserProblem(msg string) bool {
	return strings.HasPrefix(msg, "did not find expected") ||
		strings.HasPrefix(msg, "found duplicate %") ||
		msg == "found incompatible YAML document" || msg == "found undefined tag handle"
}
