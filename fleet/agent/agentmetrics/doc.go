// Package agentmetrics exposes a fleet/agent Agent to Prometheus: host
// metrics from the agent's Sampler under node_exporter's names, and each
// installed program's up, restarts, CPU, resident memory and start time
// under opskit_agent_program_* (the per-process view node_exporter does not
// give).
//
//	a, err := agent.New(agent.Config{Dir: dir, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
//	if err != nil {
//		return err
//	}
//	reg.MustRegister(agentmetrics.New(a)) // reg is the caller's, never the global registry
//
// It is a package of its own so that fleet/agent does not import the
// Prometheus client (which registers expvar's /debug/vars on
// http.DefaultServeMux).
//
// # Testing
//
// Its tests scrape a real Agent after real activity and compare with /proc.
package agentmetrics
