// Package grafana holds opskit.json, an import-ready Grafana dashboard of
// the metrics opskit's services and jobs expose: the freshdesk bridge
// (opskit_freshdesk_*), the GitLab webhook receiver (opskit_gitlabx_*), the
// release server (opskit_release_*), the
// GitLab and Freshdesk API clients
// (opskit_http_client_*, observe.NewTransport), the host agent (node_* and
// opskit_agent_program_*), rollouts (opskit_workflow_*), the batch jobs'
// textfiles (opskit_fleet_run_*, opskit_race_report_*) and every service's
// go_* and process_*.
//
// Import it in Grafana (Dashboards → New → Import, or a provisioning
// file); it asks for a Prometheus data source through its "datasource"
// variable. alerts.yml beside it is a Prometheus rules file of what to
// alert on.
//
// # Testing
//
// Its test parses the JSON, checks the panels' shape, and checks that every
// PromQL expression names only metrics the code registers (gathered from the
// packages' own registries) and that every opskit_* metric has a panel.
package grafana
