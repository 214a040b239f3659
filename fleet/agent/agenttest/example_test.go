package agenttest_test

import (
	"context"
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
	fmt.Println(err)
	// Output:
	// uptime: 3600
	// agent: package not found: app
}
