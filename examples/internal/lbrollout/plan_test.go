package lbrollout

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/workflowtest"
)

func TestConfigValidation(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.WriteFile(src, []byte("v2"), 0o755))
	good := `"Concurrency":2,"CanaryNum":1,"MaxFailures":1,"Src":"` + src + `","LB":"lb:8081","Pattern":"app","Backends":["web1:8080","web2:8080"]`
	c, err := ParseConfig([]byte("{" + good + "}"))
	require.NoError(t, err)
	assert.Equal(t, "/usr/local/bin/app", c.Dst, "default Dst")

	for _, tt := range []struct{ name, json, want string }{
		{"not json", `{`, "unexpected EOF"},
		{"unknown field", `{` + good + `,"Concurency":3}`, `unknown field "Concurency"`},
		{"trailing data", `{` + good + `}{}`, "trailing data"},
		{"zero concurrency", `{` + good + `,"Concurrency":0}`, "Concurrency must be at least 1"},
		{"negative canaries", `{` + good + `,"CanaryNum":-1}`, "CanaryNum must not be negative"},
		{"negative budget", `{` + good + `,"MaxFailures":-1}`, "MaxFailures must not be negative"},
		{"no src", `{` + good + `,"Src":""}`, "Src (the new binary) is missing"},
		{"missing src", `{` + good + `,"Src":"/nonexistent/app"}`, "no such file"},
		{"src is a directory", `{` + good + `,"Src":"/tmp"}`, "not a regular file"},
		{"no pattern", `{` + good + `,"Pattern":""}`, "Pattern"},
		{"no backends", `{` + good + `,"Backends":[]}`, "Backends is empty"},
		{"too many canaries", `{` + good + `,"CanaryNum":3}`, "CanaryNum 3 is more than the 2 backends"},
		{"bad lb", `{` + good + `,"LB":"lb"}`, `LB "lb" is not host:port`},
		{"bad backend", `{` + good + `,"Backends":["web1"]}`, `Backends[0] "web1" is not host:port`},
		{"duplicate backend", `{` + good + `,"Backends":["web1:80","web1:80"]}`, "listed twice"},
		{"relative dst", `{` + good + `,"Dst":"bin/app"}`, "not an absolute path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, ErrConfig)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err = LoadConfig(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorIs(t, err, ErrConfig)
}

func TestStopState(t *testing.T) {
	assert.Equal(t, "[a]pp", NotSelf("app"))
	assert.Equal(t, "[/]usr/local/bin/app", NotSelf("/usr/local/bin/app"))
	assert.Equal(t, "^app$", NotSelf("^app$"))

	src := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.WriteFile(src, []byte("v2"), 0o755))
	for _, tt := range []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"stopped", nil, false},
		{"was not running (pkill exit 1)", &fleet.ExitError{Host: "web1", Code: 1}, false},
		{"pkill failed (exit 2)", &fleet.ExitError{Host: "web1", Code: 2}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := workflowtest.NewRecorder()
			p, err := NewPlan(Config{Src: src, LB: "lb:1", Pattern: "app", Dst: "/srv/app"}, rec, nil, http.DefaultClient)
			require.NoError(t, err)
			assert.Equal(t, "pkill -f -- '[a]pp'", p.StopCmd)
			rec.Fail("web1", p.StopCmd, tt.err)
			var stop workflow.StateFn
			for _, s := range p.Target("web1:8080").States {
				if s.Name == StStop {
					stop = s.Fn
				}
			}
			_, err = stop(t.Context())
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

// TestDemoStartRunningJob: the demo's start command on a job that already
// runs the installed binary does nothing (a worker that took over runs the
// start state again), and on a job running another binary it fails.
func TestDemoStartRunningJob(t *testing.T) {
	dir := t.TempDir()
	dm, err := NewDemo(dir, 1, 0)
	require.NoError(t, err)
	t.Cleanup(dm.Close)
	src := filepath.Join(dir, "app-v2")
	require.NoError(t, os.WriteFile(src, []byte("app v2\n"), 0o755))
	p, err := NewPlan(dm.Config(src), dm, dm, http.DefaultClient)
	require.NoError(t, err)
	dm.Use(p)
	b := dm.Order[0]
	_, err = dm.Run(t.Context(), b, p.StartCmd)
	assert.NoError(t, err, "start on the job running the installed app v1")
	assert.Equal(t, "app v1", dm.Version(b))

	require.NoError(t, dm.Push(t.Context(), b, src, "/srv/app", p.Sum))
	_, err = dm.Run(t.Context(), b, p.StartCmd)
	assert.ErrorContains(t, err, "already running", "start while the old binary runs")
	_, err = dm.Run(t.Context(), b, p.StopCmd)
	require.NoError(t, err)
	_, err = dm.Run(t.Context(), b, p.StartCmd)
	require.NoError(t, err)
	assert.Equal(t, "app v2", dm.Version(b))
}
