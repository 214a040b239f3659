// Package promreg registers a package's Prometheus collectors on the
// registry a user passed in, all or none, for the NewMetrics constructors
// of release, gitlabx, freshdesk and observe.
//
// # Testing
//
// go test ./internal/promreg.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers cs on reg, or none of them: when one fails (a name
// already registered), those registered before it are unregistered again,
// so the caller may retry on another registry. what names the caller in
// errors ("release: the receiver's metrics"). A nil reg is an error too.
func Register(reg prometheus.Registerer, what string, cs ...prometheus.Collector) error {
	if reg == nil {
		return errors.New(what + ": needs a registry (nil prometheus.Registerer)")
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("%s: registering: %w", what, err)
		}
	}
	return nil
}
