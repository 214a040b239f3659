// Command freshdesk-bridge escalates Freshdesk tickets to GitLab issues and
// tells the tickets when their issues move. It serves POST
// /escalate/{ticketID} for the "Escalate to GitLab" button that
// escalate.user.js adds to the Freshdesk ticket page and, with a webhook
// token, POST /gitlab/webhook for the project's GitLab webhook (issue and
// comment events: close and reopen reach the ticket, comments starting with
// -note-prefix are copied to it). With -escalate N it escalates one ticket
// and prints the result as JSON.
//
// Escalations are queued: POST /escalate/{ticketID} answers 202
// {"status":"queued","id":...} once the escalation is stored in NATS
// JetStream, and GET /escalations/{id} tells its outcome (the userscript
// polls it). With no -nats-url, the JetStream server is embedded in this
// process with its files under -data-dir (one durable replica, no setup);
// with -nats-url, every replica pointed at the cluster shares the
// escalations, one ticket's one at a time, and their results (a key-value
// bucket, -result-ttl). An accepted escalation is never lost: one that a
// crash interrupted runs again after the restart or on another replica.
// GitLab webhook deliveries are stored in JetStream too. -intake sync runs
// escalations while the browser waits instead (200 with the result), as
// before.
//
// Usage:
//
//	freshdesk-bridge -freshdesk-url https://acme.freshdesk.com -gitlab-url https://gitlab.example.com \
//	    -project acme/exporter [-addr 127.0.0.1:8080] [-custom-field cf_gitlab_issue] [-escalate TICKET] \
//	    [-close-status resolved|closed|none] [-close-reply] [-close-template-file F] [-note-prefix /customer]
//	    [-metrics-addr HOST:PORT] [-log-format text|json] [-v]
//	    [-intake jetstream|sync] [-data-dir DIR] [-nats-url URL [-nats-creds F | -nats-token-file F]
//	    [-stream-replicas N]] [-partitions N] [-result-ttl D] [-ack-wait D] [-pinned-ttl D]
//
// Secrets come from files or the environment, never from flag values:
// -freshdesk-key-file or FRESHDESK_API_KEY, -gitlab-token-file or
// GITLAB_TOKEN, -token-file or BRIDGE_TOKEN (the bearer token the userscript
// sends; required when serving), -hook-token-file or GITLAB_WEBHOOK_TOKEN
// (the webhook's secret token; without it /gitlab/webhook is not served).
//
// Observability: -metrics-addr serves GET /metrics (the bridge's
// opskit_freshdesk_* counters, opskit_http_client_* for the Freshdesk and
// GitLab API calls, go_* and process_*) on a listener of its own, since the
// main one faces the browsers. -log-format json logs JSON with trace_id and
// span_id. Traces follow the OTEL_* environment variables (see
// examples/internal/telemetry; no exporter unless they ask for one): a span
// per escalation and per GitLab event, with the API calls as children.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/natsconn"
	"github.com/opskit/opskit/examples/internal/telemetry"
	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/jetstream"
	"github.com/opskit/opskit/observe"
)

func main() {
	cli.Main("freshdesk-bridge", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}, syscall.SIGTERM)
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("freshdesk-bridge", stderr, "Usage: freshdesk-bridge -freshdesk-url URL -gitlab-url URL -project P [flags]\n\n"+
		"Serves POST /escalate/{ticketID} (Authorization: Bearer <token>) and copies the ticket\n"+
		"into a GitLab issue: queued in JetStream (202, then GET /escalations/{id}) unless -intake sync;\n"+
		"-escalate N does it once from the command line.\n\nFlags:\n")
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address` for POST /escalate/{ticketID}")
	fdURL := fs.String("freshdesk-url", "", "help desk `URL`, e.g. https://acme.freshdesk.com (required)")
	fdKeyFile := fs.String("freshdesk-key-file", "", "`file` holding the Freshdesk API key (default: $FRESHDESK_API_KEY)")
	glURL := fs.String("gitlab-url", "", "GitLab `URL`, e.g. https://gitlab.example.com (required)")
	glTokenFile := fs.String("gitlab-token-file", "", "`file` holding the GitLab token (default: $GITLAB_TOKEN)")
	project := fs.String("project", "", "GitLab `project` path or ID for the issues (required)")
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token callers must send (default: $BRIDGE_TOKEN)")
	origin := fs.String("origin", "", "`origin` allowed to call from a browser (default: -freshdesk-url)")
	customField := fs.String("custom-field", "", "ticket custom `field` that receives the issue URL, e.g. cf_gitlab_issue")
	agentID := fs.Int64("agent-id", 0, "Freshdesk user `id` of the API key's agent (recognises the bridge's own notes)")
	labels := fs.String("labels", "", "comma-separated `labels` for new issues")
	maxUpload := fs.Int64("max-upload-size", freshdesk.DefaultMaxUploadSize, "largest attachment copied, in `bytes`")
	parallel := fs.Int("parallel", 4, "attachments copied at `once`")
	escalate := fs.Int64("escalate", 0, "escalate this `ticket` once, print JSON and exit instead of serving")
	hookTokenFile := fs.String("hook-token-file", "", "`file` holding the GitLab webhook's secret token (default: $GITLAB_WEBHOOK_TOKEN); enables POST /gitlab/webhook")
	closeStatus := fs.String("close-status", "resolved", "ticket `status` when its issue is closed: resolved, closed or none")
	closeReply := fs.Bool("close-reply", false, "tell the requester with a public reply when the issue is closed (default: a private note)")
	closeTemplate := fs.String("close-template-file", "", "`file` holding the html/template of the close message (fields .TicketID .IssueIID .IssueURL .Title .User)")
	notePrefix := fs.String("note-prefix", freshdesk.DefaultNotePrefix, "GitLab comments starting with this `prefix` are copied to the ticket")
	verbose := fs.Bool("v", false, "log progress to stderr (default: warnings and errors only)")
	metricsAddr := fs.String("metrics-addr", "", "serve GET /metrics on this `address` (e.g. 127.0.0.1:9102), apart from -addr")
	logFormat := telemetry.LogFormatFlag(fs)
	intakeKind := fs.String("intake", "jetstream", "where accepted escalations wait: `jetstream` (queued, durable, shared by replicas) or sync (run while the browser waits)")
	dataDir := fs.String("data-dir", natsconn.DefaultDataDir("freshdesk-bridge"), "`directory` of the embedded JetStream server's files (without -nats-url)")
	natsURL := fs.String("nats-url", "", "NATS cluster `URLs`, comma-separated; empty runs an embedded server")
	natsCreds := fs.String("nats-creds", "", "NATS credentials `file` (.creds) for -nats-url")
	natsTokenFile := fs.String("nats-token-file", "", "`file` holding a NATS token for -nats-url")
	streamReplicas := fs.Int("stream-replicas", 1, "JetStream stream and bucket replicas (3 for a three-node cluster)")
	partitions := fs.Int("partitions", 16, "JetStream partitions: the most escalations run at once across all replicas")
	resultTTL := fs.Duration("result-ttl", 24*time.Hour, "how long GET /escalations/{id} knows a result")
	pinnedTTL := fs.Duration("pinned-ttl", 15*time.Second, "JetStream: how long the partitions of a replica that stopped wait before another replica takes them over")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "JetStream: how long a replica may be silent before its escalation goes to another (or, after a crash, runs again)")
	syncAlways := fs.Bool("sync-always", false, "embedded JetStream: fsync every escalation before answering (survives power loss, not just a crash)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *intakeKind != "jetstream" && *intakeKind != "sync" {
		return cli.Usagef(fs, "-intake must be jetstream or sync, not %q", *intakeKind)
	}
	if *natsURL == "" && (*natsCreds != "" || *natsTokenFile != "") {
		return cli.Usagef(fs, "-nats-creds and -nats-token-file need -nats-url")
	}
	if *natsURL == "" && *intakeKind == "jetstream" && *escalate == 0 && *dataDir == "" {
		return cli.Usagef(fs, "-data-dir is required for the embedded JetStream server")
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	if *fdURL == "" || *glURL == "" || *project == "" {
		return cli.Usagef(fs, "-freshdesk-url, -gitlab-url and -project are required")
	}
	sync := freshdesk.SyncConfig{CloseReply: *closeReply, NotePrefix: *notePrefix}
	switch *closeStatus {
	case "resolved":
		sync.CloseStatus = freshdesk.StatusResolved
	case "closed":
		sync.CloseStatus = freshdesk.StatusClosed
	case "none":
	default:
		return cli.Usagef(fs, "-close-status must be resolved, closed or none, not %q", *closeStatus)
	}
	fdKey, err := secretFrom(*fdKeyFile, "FRESHDESK_API_KEY", getenv)
	if err != nil {
		return err
	}
	glToken, err := secretFrom(*glTokenFile, "GITLAB_TOKEN", getenv)
	if err != nil {
		return err
	}
	var token string
	if *escalate == 0 {
		if token, err = secretFrom(*tokenFile, "BRIDGE_TOKEN", getenv); err != nil {
			return err
		}
	}
	var hookToken string
	if *escalate == 0 && (*hookTokenFile != "" || getenv("GITLAB_WEBHOOK_TOKEN") != "") {
		if hookToken, err = secretFrom(*hookTokenFile, "GITLAB_WEBHOOK_TOKEN", getenv); err != nil {
			return err
		}
	}
	if *closeTemplate != "" {
		b, err := os.ReadFile(*closeTemplate)
		if err != nil {
			return err
		}
		sync.CloseTemplate = string(b)
	}
	if *origin == "" {
		*origin = strings.TrimRight(*fdURL, "/")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger, err := telemetry.NewLogger(stderr, *logFormat, level)
	if err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	shutdownTracing, err := telemetry.SetupTracing(ctx, "opskit-freshdesk-bridge")
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx))
	tp := otel.GetTracerProvider()
	reg := telemetry.NewRegistry()
	fdHTTP, glHTTP, metrics, err := instrument(reg, tp)
	if err != nil {
		return err
	}

	fd, err := freshdesk.New(freshdesk.Config{BaseURL: strings.TrimRight(*fdURL, "/") + "/api/v2", APIKey: freshdesk.Secret(fdKey),
		HTTPClient: fdHTTP, Logger: logger})
	if err != nil {
		return err
	}
	gl, err := gitlab.NewClient(glToken, gitlab.WithBaseURL(*glURL), gitlab.WithHTTPClient(glHTTP))
	if err != nil {
		return fmt.Errorf("gitlab client: %w", err)
	}
	var pid any = *project
	var lbls []string
	for l := range strings.SplitSeq(*labels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			lbls = append(lbls, l)
		}
	}
	bcfg := freshdesk.BridgeConfig{
		Freshdesk: fd, GitLab: gl, Project: pid, FreshdeskURL: *fdURL, AgentID: *agentID,
		CustomField: *customField, Labels: lbls, MaxUploadSize: *maxUpload, Parallel: *parallel,
		Token: freshdesk.Secret(token), AllowedOrigin: *origin, Sync: sync, Logger: logger,
		Metrics: metrics, TracerProvider: tp,
	}
	var hookIntake gitlabx.Intake
	if *escalate == 0 && *intakeKind == "jetstream" {
		nc, closeNATS, err := natsconn.Connect(natsconn.Config{Name: "freshdesk-bridge", URL: *natsURL, CredsFile: *natsCreds, TokenFile: *natsTokenFile, DataDir: *dataDir, SyncAlways: *syncAlways})
		if err != nil {
			return err
		}
		defer closeNATS() // after the bridge's and the hooks' Shutdown below
		js := jetstream.Config{Conn: nc, Partitions: *partitions, Replicas: *streamReplicas, AckWait: *ackWait, PinnedTTL: *pinnedTTL, Logger: logger}
		js.Stream, js.Subject = "FRESHDESK_ESCALATIONS", "freshdesk.escalations"
		if bcfg.Intake, err = jetstream.New(ctx, js); err != nil {
			return err
		}
		if bcfg.Results, err = jetstream.NewResults(ctx, jetstream.ResultsConfig{Conn: nc, Bucket: "FRESHDESK_ESCALATION_RESULTS",
			TTL: *resultTTL, Replicas: *streamReplicas}); err != nil {
			return err
		}
		js.Stream, js.Subject = "FRESHDESK_BRIDGE_HOOKS", "freshdesk.hooks"
		if hookIntake, err = jetstream.New(ctx, js); err != nil {
			return err
		}
	}
	b, err := freshdesk.NewBridge(bcfg)
	if err != nil {
		return err
	}

	if *escalate != 0 {
		esc, err := b.Escalate(ctx, *escalate)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		return enc.Encode(esc)
	}

	mux := http.NewServeMux()
	mux.Handle("/escalate/", b.Handler())
	mux.Handle("/escalations/", b.Handler())
	var hooks *gitlabx.Hooks
	if hookToken != "" {
		bot, _, err := gl.Users.CurrentUser(gitlab.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("gitlab: who am I: %w", err)
		}
		hm, err := gitlabx.NewMetrics(reg)
		if err != nil {
			return err
		}
		hooks, err = gitlabx.NewHooks(gitlabx.HooksConfig{Token: gitlabx.Secret(hookToken), Intake: hookIntake,
			BotUserID: bot.ID, BotUsername: bot.Username, Logger: logger, Metrics: hm, TracerProvider: tp})
		if err != nil {
			return err
		}
		b.Register(hooks)
		if err := hooks.Start(); err != nil { // runs what was stored before a restart
			return err
		}
		mux.Handle("POST /gitlab/webhook", hooks)
	}
	if err := b.Start(); err != nil { // runs the escalations stored before a restart
		return err
	}
	ms, err := telemetry.StartMetrics(ctx, *metricsAddr, reg, logger)
	if err != nil {
		return err
	}
	defer ms.Close()
	if ms != nil {
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ms.Addr())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Finish the accepted work with the listener still up: GitLab counts a
	// refused webhook delivery toward disabling the hook, and a button
	// pressed now is still queued (JetStream: handled on the next start or
	// by another replica). Then stop listening.
	err = b.Shutdown(shutdown)
	if hooks != nil {
		err = errors.Join(err, hooks.Shutdown(shutdown))
	}
	return errors.Join(err, srv.Shutdown(shutdown))
}

// instrument returns the HTTP clients of the Freshdesk and GitLab API
// clients, counting and tracing their calls, and the bridge's metrics, all
// on reg.
func instrument(reg *prometheus.Registry, tp trace.TracerProvider) (fd, gl *http.Client, m *freshdesk.Metrics, err error) {
	fdm, err := observe.NewClientMetrics(reg, "freshdesk")
	if err != nil {
		return nil, nil, nil, err
	}
	glm, err := observe.NewClientMetrics(reg, "gitlab")
	if err != nil {
		return nil, nil, nil, err
	}
	if m, err = freshdesk.NewMetrics(reg); err != nil {
		return nil, nil, nil, err
	}
	fd = &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: fdm, TracerProvider: tp, Endpoint: freshdesk.Endpoint})}
	gl = &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: glm, TracerProvider: tp})}
	return fd, gl, m, nil
}

// secretFrom reads a secret from file (opskit.SecretFromFile: its first
// line), or else from the environment variable env, through getenv so that
// tests give each run its environment. It returns the plain string, which
// goes into freshdesk.Secret, gitlab.NewClient and gitlabx.Secret alike.
func secretFrom(file, env string, getenv func(string) string) (string, error) {
	if file != "" {
		s, err := opskit.SecretFromFile(file)
		return s.Reveal(), err
	}
	if s := strings.TrimSpace(getenv(env)); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%w: pass a file flag or set $%s", opskit.ErrNoSecret, env)
}
