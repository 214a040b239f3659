// Package promgate is a metric gate for rollouts: it evaluates a
// Prometheus query and refuses the next phase when a sample crosses a
// threshold. Use it as workflow.Runner.Gate or as the Gate of a
// workflow/temporal Definition (there it is also asked during the soak,
// every Options.GateEvery).
//
//	c, err := api.NewClient(api.Config{Address: "http://prometheus:9090"})
//	if err != nil {
//		return err
//	}
//	g := &promgate.Gate{API: v1.NewAPI(c), Query: `sum(rate(http_errors_total[5m])) / sum(rate(http_requests_total[5m]))`, Op: promgate.Below, Threshold: 0.01}
//	r := workflow.Runner{CanaryNum: 1, Soak: 10 * time.Minute, Gate: g.Func()}
//
// A refused gate ends a Runner's rollout before the rollout phase with
// workflow.ESCanaryFailure, and the *Refused error names the query, the
// sample and the threshold.
//
// # Testing
//
// The package's tests answer the client from an httptest server that
// follows the documented /api/v1/query response shape.
package promgate

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/opskit/opskit/workflow"
)

// Op says how a sample must compare with the threshold for the gate to
// pass.
type Op string

// The comparisons.
const (
	Below   Op = "<"
	AtMost  Op = "<="
	Above   Op = ">"
	AtLeast Op = ">="
)

// Gate evaluates Query and passes when every sample of the result
// compares with Threshold as Op says. It holds no resources.
type Gate struct {
	// API queries Prometheus; required (v1.NewAPI).
	API v1.API
	// Query is the PromQL expression; it must give a scalar or an instant
	// vector.
	Query string
	// Op and Threshold are the condition each sample must meet.
	Op        Op
	Threshold float64
	// AllowEmpty passes a query with no samples; by default no data
	// refuses, since a dead service reports no errors either.
	AllowEmpty bool
	// Timeout bounds one query; 0 means 30s.
	Timeout time.Duration
}

// Refused is the error of a gate whose query crossed the threshold (or
// gave no samples: then Value is NaN and Metric empty).
type Refused struct {
	Query     string
	Metric    string
	Value     float64
	Op        Op
	Threshold float64
}

// Error names the query, the sample and the condition it failed.
func (e *Refused) Error() string {
	if e.Metric == "" && e.Value != e.Value {
		return fmt.Sprintf("promgate: query %q returned no samples", e.Query)
	}
	return fmt.Sprintf("promgate: query %q: %s = %g, want %s %g", e.Query, e.Metric, e.Value, e.Op, e.Threshold)
}

// ErrQuery is wrapped by errors of a query that could not be evaluated
// (unreachable server, bad PromQL, a matrix result).
var ErrQuery = errors.New("promgate: query failed")

// Check evaluates the query now. It returns nil when the gate passes, a
// *Refused when a sample fails the condition, or an error wrapping
// ErrQuery.
func (g *Gate) Check(ctx context.Context) error {
	d := g.Timeout
	if d == 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	val, _, _, err := g.API.Query(ctx, g.Query, time.Time{})
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrQuery, g.Query, err)
	}
	type sample struct {
		metric string
		v      float64
	}
	var samples []sample
	switch v := val.(type) {
	case *model.Scalar:
		samples = append(samples, sample{"scalar", float64(v.Value)})
	case model.Vector:
		for _, s := range v {
			samples = append(samples, sample{s.Metric.String(), float64(s.Value)})
		}
	default:
		return fmt.Errorf("%w: %q gave a %s, want a scalar or a vector", ErrQuery, g.Query, val.Type())
	}
	if len(samples) == 0 {
		if g.AllowEmpty {
			return nil
		}
		return &Refused{Query: g.Query, Value: nan(), Op: g.Op, Threshold: g.Threshold}
	}
	for _, s := range samples {
		ok, err := g.holds(s.v)
		if err != nil {
			return err
		}
		if !ok {
			return &Refused{Query: g.Query, Metric: s.metric, Value: s.v, Op: g.Op, Threshold: g.Threshold}
		}
	}
	return nil
}

func nan() float64 { var z float64; return z / z }

func (g *Gate) holds(v float64) (bool, error) {
	switch g.Op {
	case Below:
		return v < g.Threshold, nil
	case AtMost:
		return v <= g.Threshold, nil
	case Above:
		return v > g.Threshold, nil
	case AtLeast:
		return v >= g.Threshold, nil
	}
	return false, fmt.Errorf("%w: unknown comparison %q", ErrQuery, g.Op)
}

// Func returns the gate as a workflow.Runner.Gate (or a Definition's
// Gate): it evaluates the query before every phase it is asked about
// (and, with workflow/temporal, during the soak).
func (g *Gate) Func() func(ctx context.Context, next workflow.Phase) error {
	return func(ctx context.Context, _ workflow.Phase) error { return g.Check(ctx) }
}
