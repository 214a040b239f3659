package promgate_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"go.temporal.io/sdk/testsuite"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
	"github.com/opskit/opskit/workflow/temporal/promgate"
)

// promServer answers /api/v1/query (GET, or POST with a form body, as the
// client sends it) in the shape documented at
// https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries:
// {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[<unix time>,"<value>"]}]}}
// Each query pops the next answer; the last one repeats.
type promServer struct {
	mu      sync.Mutex
	answers []string // "vector:<v>", "scalar:<v>", "empty", "error"
	queries []string
}

func (p *promServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.queries = append(p.queries, r.Form.Get("query"))
	a := p.answers[0]
	if len(p.answers) > 1 {
		p.answers = p.answers[1:]
	}
	p.mu.Unlock()
	now := float64(time.Now().UnixMilli()) / 1000
	kind, val, _ := strings.Cut(a, ":")
	var data any
	switch kind {
	case "vector":
		data = map[string]any{"resultType": "vector", "result": []any{
			map[string]any{"metric": map[string]string{"job": "web", "instance": "web1:9100"}, "value": []any{now, val}},
		}}
	case "scalar":
		data = map[string]any{"resultType": "scalar", "result": []any{now, val}}
	case "empty":
		data = map[string]any{"resultType": "vector", "result": []any{}}
	case "error":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func newGate(t *testing.T, answers ...string) (*promgate.Gate, *promServer) {
	t.Helper()
	p := &promServer{answers: answers}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &promgate.Gate{API: v1.NewAPI(c), Query: "error_ratio", Op: promgate.Below, Threshold: 0.01}, p
}

func TestCheck(t *testing.T) {
	tests := []struct {
		answer     string
		allowEmpty bool
		op         promgate.Op
		want       string // "" passes; "refused" a *Refused; "query" ErrQuery
		inErr      string
	}{
		{answer: "vector:0.001", want: ""},
		{answer: "vector:0.05", want: "refused", inErr: `error_ratio": {instance="web1:9100", job="web"} = 0.05, want < 0.01`},
		{answer: "vector:0.01", want: "refused"},
		{answer: "vector:0.01", op: promgate.AtMost, want: ""},
		{answer: "scalar:0.5", op: promgate.Above, want: ""},
		{answer: "scalar:0.001", op: promgate.AtLeast, want: "refused", inErr: "scalar = 0.001, want >= 0.01"},
		{answer: "empty", want: "refused", inErr: "no samples"},
		{answer: "empty", allowEmpty: true, want: ""},
		{answer: "error", want: "query", inErr: "parse error at char 5"},
	}
	for _, tc := range tests {
		t.Run(tc.answer+string(tc.op), func(t *testing.T) {
			g, p := newGate(t, tc.answer)
			g.AllowEmpty = tc.allowEmpty
			if tc.op != "" {
				g.Op = tc.op
			}
			err := g.Check(t.Context())
			var ref *promgate.Refused
			switch tc.want {
			case "":
				if err != nil {
					t.Errorf("Check = %v; want nil", err)
				}
			case "refused":
				if !errors.As(err, &ref) {
					t.Errorf("Check = %v; want a *promgate.Refused", err)
				}
			case "query":
				if !errors.Is(err, promgate.ErrQuery) {
					t.Errorf("Check = %v; want ErrQuery", err)
				}
			}
			if tc.inErr != "" && (err == nil || !strings.Contains(err.Error(), tc.inErr)) {
				t.Errorf("Check = %v; want the error to contain %q", err, tc.inErr)
			}
			if len(p.queries) != 1 || p.queries[0] != "error_ratio" {
				t.Errorf("server saw queries %q; want one error_ratio", p.queries)
			}
		})
	}
}

// TestRunnerGate: a gate that refuses after the canary ends the local
// Runner's rollout with ESCanaryFailure and the sample in the error.
func TestRunnerGate(t *testing.T) {
	g, _ := newGate(t, "vector:0", "vector:0.2")
	var ran []string
	state := func(name string) workflow.StateFn {
		return func(context.Context) (workflow.StateFn, error) { ran = append(ran, name); return nil, nil }
	}
	targets := []workflow.Target{
		{Name: "t0", States: []workflow.State{{Name: "a", Fn: state("t0")}}},
		{Name: "t1", States: []workflow.State{{Name: "a", Fn: state("t1")}}},
	}
	r := workflow.Runner{CanaryNum: 1, Gate: g.Func()}
	rep, err := r.Run(t.Context(), targets)
	var re *workflow.RunError
	var ref *promgate.Refused
	if !errors.As(err, &re) || re.State != workflow.ESCanaryFailure || !errors.As(err, &ref) || ref.Value != 0.2 {
		t.Fatalf("Run = %v; want ESCanaryFailure with the refused sample 0.2", err)
	}
	if len(rep.NotStarted) != 1 || rep.NotStarted[0] != "t1" || len(ran) != 1 {
		t.Errorf("ran %v, report %+v; want only the canary t0", ran, rep)
	}
}

// TestTemporalSoakGate: with GateEvery, the Temporal backend asks the gate
// during the soak; the sample that crosses the threshold ends the rollout
// there with ESCanaryFailure, and the rest never starts.
func TestTemporalSoakGate(t *testing.T) {
	// before the canary, then twice healthy in the soak, then bad.
	g, p := newGate(t, "vector:0", "vector:0.001", "vector:0.002", "vector:0.3")
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	noop := func(context.Context) (workflow.StateFn, error) { return nil, nil }
	def := &temporal.Definition{Gate: g.Func(), Targets: []workflow.Target{
		{Name: "t0", States: []workflow.State{{Name: "a", Fn: noop}}},
		{Name: "t1", States: []workflow.State{{Name: "a", Fn: noop}}},
	}}
	temporal.Register(env, map[string]*temporal.Definition{"d": def})
	in, err := temporal.NewInput(def, temporal.Options{Definition: "d", CanaryNum: 1, Soak: time.Hour, GateEvery: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	env.ExecuteWorkflow(temporal.WorkflowName, in)
	var st temporal.Status
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	rep, err := temporal.Result(st)
	var re *workflow.RunError
	if !errors.As(err, &re) || re.State != workflow.ESCanaryFailure || re.Phase != workflow.PhaseSoak || !strings.Contains(err.Error(), "= 0.3, want < 0.01") {
		t.Fatalf("Result = %v; want ESCanaryFailure in the soak naming the sample 0.3", err)
	}
	if len(rep.NotStarted) != 1 || rep.NotStarted[0] != "t1" {
		t.Errorf("report %+v; want t1 not started", rep)
	}
	if len(p.queries) != 4 {
		t.Errorf("gate asked %d times; want 4 (canary, then every 5m of soak until the bad sample)", len(p.queries))
	}
}
