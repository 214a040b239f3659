// Package opskit is an embeddable Go SDK for the automation a small platform
// team writes around GitLab, a help desk and a fleet of Linux machines.
//
// This package holds only the SDK's one credential type, [Secret], which
// every package uses (or aliases, as freshdesk.Secret and release.Secret
// do): it never prints through fmt, log/slog or encoders, compares in
// constant time, and is read with [SecretFromFile], [SecretFromEnv] or
// [SecretFromFileOrEnv]:
//
//	tok, err := opskit.SecretFromFileOrEnv(*tokenFile, "OPSKIT_AGENT_TOKEN")
//	if err != nil {
//		return err // names the file or variable, never the value
//	}
//	a, err := agent.New(agent.Config{Dir: "/var/lib/opskit-agent", Token: tok})
//
// A string converts with opskit.Secret(s). Migration: fleettest.Config.Password
// and the Token fields of fleet/agent used to have a type from an internal
// package that a user could not name; they are opskit.Secret now.
//
// Import the packages below into your own internal tools, compose their
// typed APIs in your own main packages, and test those mains with the
// in-memory fakes that opskit ships beside each package (the *test
// subpackages, like net/http/httptest).
//
//   - [github.com/opskit/opskit/release]: stream release.tgz with its metadata
//     from a build server to a release API that verifies the checksum, stores
//     the release atomically and runs a release hook; fetch a file only when
//     its checksum differs.
//   - [github.com/opskit/opskit/gitlabx]: a GitLab webhook service that warns
//     on merge requests whose branches carry different versions and moves
//     issues through workflow labels; a create-or-comment issue reporter.
//   - [github.com/opskit/opskit/gitlabx/gitlabtest]: a stateful in-memory
//     GitLab REST v4 server and webhook sender for tests.
//   - [github.com/opskit/opskit/freshdesk]: a Freshdesk API v2 client and a
//     bridge that escalates a ticket to a GitLab issue without duplicates.
//   - [github.com/opskit/opskit/freshdesk/freshdesktest]: an in-memory
//     Freshdesk API v2 server for tests.
//   - [github.com/opskit/opskit/racelog]: a streaming parser for Go
//     race-detector reports in application logs, with stable fingerprints.
//   - [github.com/opskit/opskit/semtag]: the next semantic-version tag, from
//     GitLab tags or a local git repository.
//   - [github.com/opskit/opskit/fleet]: local, SSH and expect command
//     executors, fan-out over many hosts, discovery and file push.
//   - [github.com/opskit/opskit/fleet/agent]: a small host agent for system
//     stats and supervised package installs, reached over SSH.
//   - [github.com/opskit/opskit/fleet/fleettest]: an in-process SSH server and
//     a recording executor for tests.
//   - [github.com/opskit/opskit/workflow]: a canary rollout runner with an
//     exact failure budget, an EndState and a resumable journal.
//   - [github.com/opskit/opskit/observe]: an http.RoundTripper with
//     Prometheus metrics and OpenTelemetry spans for API clients, and a
//     node_exporter textfile writer for batch jobs.
//
// Prometheus collectors for a registry of yours (never the global one):
// [github.com/opskit/opskit/fleet/agent/agentmetrics] (host metrics under
// node_exporter's names, and per supervised program) and
// [github.com/opskit/opskit/workflow/workflowmetrics] (a rollout's progress).
//
// More fakes for tests: [github.com/opskit/opskit/release/releasetest] (a
// release API), [github.com/opskit/opskit/fleet/agent/agenttest] (a real agent
// in-process), [github.com/opskit/opskit/semtag/semtagtest] (an in-memory tag
// repository) and [github.com/opskit/opskit/workflow/workflowtest] (a
// recording executor).
//
// The programs under examples/ are thin mains, one per job; examples/tour
// runs all of it end to end against the fakes:
//
//	go run github.com/opskit/opskit/examples/tour@latest
package opskit
