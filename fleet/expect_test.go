package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// spawners returns a local spawner and one over an in-process SSH server
// that runs commands for real.
func spawners(t *testing.T) map[string]struct {
	sp   fleet.Spawner
	host string
} {
	r := newRig(t, fleettest.Config{})
	return map[string]struct {
		sp   fleet.Spawner
		host string
	}{
		"local": {&fleet.Local{}, "localhost"},
		"ssh":   {r.executor(t, nil), r.srv.Addr()},
	}
}

func fakeApt(t *testing.T) (script, dir string) {
	t.Helper()
	script, err := filepath.Abs("testdata/fake-apt-get")
	require.NoError(t, err)
	return script, t.TempDir()
}

func TestAptGetInstall(t *testing.T) {
	tests := []struct {
		name       string
		installed  []string
		pkgs       []string
		wantNew    []string
		wantNewest []string
		answered   bool
		wantExit   int
	}{
		{name: "fresh install answers the prompt", pkgs: []string{"nginx"}, wantNew: []string{"nginx"}, answered: true},
		{name: "already the newest", installed: []string{"nginx"}, pkgs: []string{"nginx"}, wantNewest: []string{"nginx"}},
		{name: "one new one current", installed: []string{"curl"}, pkgs: []string{"curl", "jq"}, wantNew: []string{"jq"}, wantNewest: []string{"curl"}, answered: true},
		{name: "unknown package", pkgs: []string{"no-such-package"}, wantExit: 100},
	}
	for name, s := range spawners(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				script, dir := fakeApt(t)
				for _, p := range tc.installed {
					require.NoError(t, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				line := "FAKE_APT_DIR=" + fleet.ShellQuote(dir) + " " + fleet.ShellQuote(append([]string{script, "install"}, tc.pkgs...)...)
				out, err := fleet.AptGetInstall(ctx, s.sp, fleet.Command{Host: s.host, Shell: line})
				if tc.wantExit != 0 {
					var ee *fleet.ExitError
					require.ErrorAs(t, err, &ee)
					assert.Equal(t, tc.wantExit, ee.Code)
					return
				}
				require.NoError(t, err, "transcript: %s", out.Result.Stdout)
				assert.Equal(t, tc.wantNew, out.Installed)
				assert.Equal(t, tc.wantNewest, out.AlreadyNewest)
				assert.Equal(t, tc.answered, out.Answered)
				for _, p := range tc.wantNew {
					assert.FileExists(t, filepath.Join(dir, p))
				}
			})
		}
	}
}

func TestExpecter(t *testing.T) {
	for name, s := range spawners(t) {
		t.Run(name+"/partial match keeps the rest of a chunk", func(t *testing.T) {
			e, err := s.sp.Spawn(t.Context(), fleet.Command{Host: s.host, Shell: "printf 'alpha beta gamma\\n'; read x"})
			require.NoError(t, err)
			defer e.Close()
			_, _, err = e.Expect(t.Context(), regexp.MustCompile(`alpha`))
			require.NoError(t, err)
			_, m, err := e.Expect(t.Context(), regexp.MustCompile(`(g\w+)`))
			require.NoError(t, err, "the second match is in the same chunk as the first")
			assert.Equal(t, "gamma", m[1])
		})
		t.Run(name+"/deadline covers the dialogue while output keeps coming", func(t *testing.T) {
			e, err := s.sp.Spawn(t.Context(), fleet.Command{Host: s.host, Shell: "while :; do echo tick; sleep 0.05; done"})
			require.NoError(t, err)
			defer e.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			_, _, err = e.Expect(ctx, regexp.MustCompile(`never printed`))
			require.ErrorIs(t, err, fleet.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		})
		t.Run(name+"/program ends first", func(t *testing.T) {
			e, err := s.sp.Spawn(t.Context(), fleet.Command{Host: s.host, Shell: "echo bye; exit 4"})
			require.NoError(t, err)
			defer e.Close()
			_, _, err = e.Expect(t.Context(), regexp.MustCompile(`never printed`))
			require.ErrorIs(t, err, fleet.ErrExpectEnded)
			var xe *fleet.ExpectError
			require.ErrorAs(t, err, &xe)
			assert.Contains(t, xe.Output, "bye")
			res, err := e.Wait(t.Context())
			var ee *fleet.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, 4, res.ExitCode)
		})
		t.Run(name+"/batch and switch", func(t *testing.T) {
			e, err := s.sp.Spawn(t.Context(), fleet.Command{Host: s.host, Shell: `printf 'name? '; read n; echo "hello $n"; printf 'sure? [y/n] '; read a; echo "answer $a"`})
			require.NoError(t, err)
			defer e.Close()
			err = e.Batch(t.Context(),
				fleet.Step{Expect: regexp.MustCompile(`name\? `)},
				fleet.Step{Send: "bob\n"},
				fleet.Step{Expect: regexp.MustCompile(`hello bob`)},
				fleet.Step{Switch: []fleet.Case{
					{Match: regexp.MustCompile(`password:`), Send: "no\n"},
					{Match: regexp.MustCompile(`\[y/n\]`), Send: "y\n"},
				}},
				fleet.Step{Expect: regexp.MustCompile(`answer y`)},
			)
			require.NoError(t, err)
			res, err := e.Wait(t.Context())
			require.NoError(t, err)
			assert.Contains(t, string(res.Stdout), "hello bob")
		})
		t.Run(name+"/cancel", func(t *testing.T) {
			e, err := s.sp.Spawn(t.Context(), fleet.Command{Host: s.host, Shell: "sleep 30"})
			require.NoError(t, err)
			defer e.Close()
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(200*time.Millisecond, cancel)
			_, _, err = e.Expect(ctx, regexp.MustCompile(`x`))
			require.ErrorIs(t, err, context.Canceled)
		})
	}
}
