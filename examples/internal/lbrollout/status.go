package lbrollout

import (
	"fmt"
	"io"
	"strings"

	"github.com/opskit/opskit/workflow"
)

// PrintStatus prints a rollout's status as both examples' status
// subcommands show it: the phase and flags (paused, promoted, aborted), or
// how it ended, then one line per backend: name, outcome, state, attempts,
// error.
func PrintStatus(w io.Writer, st workflow.Status) {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{st.Paused, "paused"}, {st.Promoted, "promoted"}, {st.Aborted, "aborted"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	switch {
	case st.Ended && st.Err == "":
		fmt.Fprintf(w, "ended %s\n", st.End)
	case st.Ended:
		fmt.Fprintf(w, "ended %s in the %s phase: %s\n", st.End, st.EndPhase, st.Err)
	default:
		fmt.Fprintln(w, strings.Join(append([]string{"phase", string(st.Phase)}, flags...), " "))
	}
	width := 0
	for _, t := range st.Targets {
		width = max(width, len(t.Name))
	}
	for _, t := range st.Targets {
		line := fmt.Sprintf("  %-*s %-12s %-16s attempts=%d %s", width, t.Name, t.Outcome, t.State, t.Attempts, t.Err)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}
