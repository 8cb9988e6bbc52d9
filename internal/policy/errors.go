package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// ValidationError is one problem found in a policy file, located by line
// and column (1-based; 0 when the problem has no place in the file, such as
// an unreadable file).
type ValidationError struct {
	File    string
	Line    int
	Column  int
	Policy  string // the policy's name, when the problem is inside a policy
	Message string
}

// Error formats the problem as editors and compilers do:
// "policies.yaml:12:7: policy \"golden-to-east\": message".
func (e ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Policy != "" {
		fmt.Fprintf(&b, "policy %q: ", e.Policy)
	}
	b.WriteString(e.Message)
	return b.String()
}

// ValidationErrors holds every problem of a file, in file order. It is the
// error Parse, Load and ValidateEnv return (as *ValidationErrors), so that a
// user fixes a file in one pass instead of one error per reload.
type ValidationErrors struct {
	Errors []ValidationError
}

// Error prints one problem per line.
func (es *ValidationErrors) Error() string {
	lines := make([]string, len(es.Errors))
	for i, e := range es.Errors {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap classifies every policy file problem as an invalid argument.
func (es *ValidationErrors) Unwrap() error { return errdefs.ErrInvalidArgument }

// orNil sorts the problems by position (keeping the order of problems found
// at the same place) and returns es, or nil when there are none.
func (es *ValidationErrors) orNil() error {
	if len(es.Errors) == 0 {
		return nil
	}
	sort.SliceStable(es.Errors, func(i, j int) bool {
		a, b := es.Errors[i], es.Errors[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if n := len(es.Errors); n > MaxErrors {
		es.Errors = append(es.Errors[:MaxErrors], ValidationError{File: es.Errors[0].File,
			Message: fmt.Sprintf("... and %d more problems", n-MaxErrors)})
	}
	// Messages may quote the file (a YAML syntax error names the token it
	// stopped at): never echo anything shaped like an access key.
	for i := range es.Errors {
		es.Errors[i].Message = redactAccessKeys(es.Errors[i].Message)
	}
	return es
}

// MaxErrors caps how many problems one file reports; past that, the file
// is probably not a policy file at all.
const MaxErrors = 100
