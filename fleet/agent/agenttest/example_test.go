package agenttest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
)

// Example serves fixed stats from an in-process agent reached through an
// in-process SSH server.
func Example() {
	srv, err := agenttest.New(agenttest.Config{Stats: &agent.Stats{Uptime: 3600}, SSH: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	c := srv.SSHClient()
	defer c.Close()
	st, err := c.Stats(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("uptime:", st.Uptime)
	_, err = c.Status(context.Background(), "app")
	var ae *agent.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Method, ae.Path, ae.Status, ae.Message, errors.Is(err, agent.ErrNotFound))
	}
	// Output:
	// uptime: 3600
	// GET /v1/packages/app 404 agent: package not found: app true
}
