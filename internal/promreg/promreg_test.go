package promreg_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opskit/opskit/internal/promreg"
)

func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	taken := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	reg.MustRegister(taken)
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	err := promreg.Register(reg, "x: metrics", a, b)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("Register with a taken name = %v; want an AlreadyRegisteredError", err)
	}
	if !reg.Unregister(taken) || reg.Unregister(a) {
		t.Error("Register left a_total registered after failing on b_total")
	}
	if err := promreg.Register(nil, "x: metrics", a); err == nil {
		t.Error("Register(nil) = nil; want an error")
	}
	if err := promreg.Register(prometheus.NewRegistry(), "x: metrics", a, b); err != nil {
		t.Errorf("Register on a fresh registry = %v", err)
	}
}
