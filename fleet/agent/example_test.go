package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/agent/agenttest"
)

// Example installs a package holding a copy of sleep on an agent listening
// on a unix socket, reads fixed stats, and stops the program.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "agent-example-")
	defer os.RemoveAll(dir)

	a, err := agent.New(agent.Config{
		Dir: filepath.Join(dir, "pkgs"),
		Sampler: agent.NewSampler(agent.SamplerConfig{Collect: func(context.Context, *agent.Stats) (*agent.Stats, error) {
			return &agent.Stats{Uptime: 3600}, nil
		}}),
		StartGrace: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close(ctx)
	sock := filepath.Join(dir, "agent.sock")
	ln, err := agent.Listen(ctx, agent.ListenConfig{Address: sock})
	if err != nil {
		fmt.Println(err)
		return
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go a.Serve(sctx, ln)
	a.Sampler().Collect(ctx)

	// A package: bin/sleep, a copy of the system's sleep.
	z, err := agenttest.ProgramZip("sleep", "bin/sleep")
	if err != nil {
		fmt.Println(err)
		return
	}

	c := agent.NewUnixClient(sock, agent.ClientConfig{})
	defer c.Close()
	st, err := c.Install(ctx, "napper", bytes.NewReader(z), int64(len(z)),
		agent.Manifest{Binary: "bin/sleep", Args: []string{"600"}}, agent.InstallOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s running=%v restarts=%d\n", st.Name, st.Running, st.Restarts)
	stats, _ := c.Stats(ctx)
	fmt.Println("uptime:", stats.Uptime)
	st, _ = c.Stop(ctx, "napper")
	fmt.Printf("%s running=%v last exit=%q\n", st.Name, st.Running, st.LastExit)
	// Output:
	// napper running=true restarts=0
	// uptime: 3600
	// napper running=false last exit="signal: terminated"
}
