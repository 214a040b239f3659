package fleet_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
)

// TestExitErrorShowsStderrTail: a rollout report that prints the error must
// say why the command failed (as pssh and Ansible do), not only
// "exit status 1"; the full stderr stays in the field.
func TestExitErrorShowsStderrTail(t *testing.T) {
	systemd := "Job for app.service failed because the control process exited with error code.\n" +
		"See \"systemctl status app.service\" and \"journalctl -xeu app.service\" for details.\n"
	long := strings.Repeat("warning: noise line\n", 100) + "fatal: disk full\n"
	tests := []struct {
		name     string
		ee       fleet.ExitError
		want     string // the whole message, when exact
		contains []string
		absent   []string
	}{
		{name: "no stderr", ee: fleet.ExitError{Host: "web1", Code: 1}, want: "fleet: web1: exit status 1"},
		{name: "blank stderr", ee: fleet.ExitError{Host: "web1", Code: 1, Stderr: []byte("\n \n")}, want: "fleet: web1: exit status 1"},
		{name: "one line", ee: fleet.ExitError{Host: "web1", Code: 2, Stderr: []byte("pkill: bad pattern\n")},
			want: "fleet: web1: exit status 2: pkill: bad pattern"},
		{name: "systemd", ee: fleet.ExitError{Host: "web1", Code: 1, Stderr: []byte(systemd)},
			contains: []string{"fleet: web1: exit status 1: ", "Job for app.service failed", "journalctl -xeu app.service"}},
		{name: "signal", ee: fleet.ExitError{Host: "web1", Code: -1, Signal: "KILL", Stderr: []byte("out of memory\n")},
			want: "fleet: web1: killed by signal KILL: out of memory"},
		{name: "long stderr keeps the last line", ee: fleet.ExitError{Host: "db", Code: 1, Stderr: []byte(long)},
			contains: []string{"fleet: db: exit status 1: ", "fatal: disk full"}},
		{name: "one huge line", ee: fleet.ExitError{Host: "db", Code: 1, Stderr: []byte(strings.Repeat("é", 500) + "END")},
			contains: []string{"...", "END"}},
		{name: "control characters", ee: fleet.ExitError{Host: "db", Code: 1, Stderr: []byte("bad\x1b[31m red\r\n")},
			absent: []string{"\x1b", "\r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = &tt.ee
			msg := err.Error()
			if tt.want != "" {
				assert.Equal(t, tt.want, msg)
			}
			for _, s := range tt.contains {
				assert.Contains(t, msg, s)
			}
			for _, s := range tt.absent {
				assert.NotContains(t, msg, s)
			}
			assert.True(t, utf8.ValidString(msg), "Error() = %q is not valid UTF-8", msg)
			tail := strings.TrimPrefix(msg, "fleet: "+tt.ee.Host+": ")
			assert.LessOrEqual(t, len(tail), 200+len("exit status -1: ...")+len("killed by signal KILL"), "Error() = %q; want the stderr part bounded to about 200 bytes", msg)
			assert.NotContains(t, msg, "\n", "Error() is one line")
		})
	}
}

// TestExitErrorKeepsFullStderr: errors.As gives the whole stderr a Local run
// produced, while Error() shows only its end.
func TestExitErrorKeepsFullStderr(t *testing.T) {
	var l fleet.Local
	_, err := l.Run(t.Context(), fleet.Command{Shell: "i=0; while [ $i -lt 50 ]; do echo noise $i >&2; i=$((i+1)); done; echo 'Job for app.service failed' >&2; exit 1"})
	var ee *fleet.ExitError
	require.True(t, errors.As(err, &ee), "Run error = %v; want a *fleet.ExitError", err)
	assert.Contains(t, err.Error(), "exit status 1: ")
	assert.Contains(t, err.Error(), "Job for app.service failed")
	assert.NotContains(t, err.Error(), "noise 0")
	assert.Contains(t, string(ee.Stderr), "noise 0\n")
	assert.True(t, strings.HasSuffix(string(ee.Stderr), "Job for app.service failed\n"))
}
