// Command gitlab-hooks receives GitLab webhooks and runs two bots on them:
// a version check that warns, in one note per merge request, when the source
// and target branches carry different versions, and a label machine that
// moves the issues linked to a merge request across the board (In Review
// when it opens, To Test when it merges).
//
// Usage:
//
//	gitlab-hooks -gitlab-url URL -token-file F -secret-file F [-addr 127.0.0.1:8080]
//	    [-signing-token-file F] [-version-file VERSION] [-version-regexp RE]
//	    [-labels "To Do,In Development,In Review,To Test,Testing"] [-scope S]
//	    [-reopen-on-merge] [-allow-backwards] [-workers N]
//	    [-intake jetstream|memory] [-data-dir DIR] [-nats-url URL
//	    [-nats-creds F | -nats-token-file F] [-stream-replicas N]] [-partitions N]
//	    [-metrics-addr HOST:PORT] [-log-format text|json]
//
// Accepted deliveries are stored in NATS JetStream before GitLab gets its
// 202: with no -nats-url, in a server embedded in this process with its
// files under -data-dir (one durable replica, no setup); with -nats-url, in
// that cluster, shared by every replica pointed at it. -intake memory keeps
// them in memory instead (fast, lost on a crash).
//
// The GitLab API token may come from $GITLAB_TOKEN and the webhook secret
// from $GITLAB_WEBHOOK_SECRET instead of files. On SIGINT or SIGTERM it
// stops accepting deliveries and finishes the running ones; with JetStream,
// what it does not finish stays stored for the next start or another
// replica.
//
// Observability: -metrics-addr serves GET /metrics (opskit_gitlabx_* for the
// deliveries, their answers, the handlers and the intake's depth;
// opskit_http_client_* for the GitLab API calls; go_* and process_*) on a
// listener of its own, since -addr faces GitLab. -log-format json logs JSON
// with trace_id and span_id. Traces follow the OTEL_* environment variables
// (see examples/internal/telemetry; no exporter unless they ask for one): a
// span per delivery handled, with the GitLab API calls as children.
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
	"path"
	"regexp"
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
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/jetstream"
	"github.com/opskit/opskit/observe"
)

func main() {
	cli.Main("gitlab-hooks", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}, syscall.SIGTERM)
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

const defaultLabels = "To Do,In Development,In Review,To Test,Testing"

// readSecret reads a secret from file, or from the environment variable env
// when file is empty.
func readSecret(file, env, what string) (opskit.Secret, error) {
	s, err := opskit.SecretFromFileOrEnv(file, env)
	if err != nil && file == "" {
		return "", fmt.Errorf("%s: set -%s-file or $%s: %w", what, strings.ReplaceAll(what, " ", "-"), env, err)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("gitlab-hooks", stderr, "Usage: gitlab-hooks -gitlab-url URL -token-file F -secret-file F [flags]\n\n"+
		"Receives GitLab webhooks: warns on MRs with mismatched versions and moves linked issues across the board.\n\nFlags:\n")
	addr := fs.String("addr", "127.0.0.1:8080", "listen on this `address`")
	gitlabURL := fs.String("gitlab-url", "", "GitLab base `URL`, e.g. https://gitlab.example.com (required)")
	tokenFile := fs.String("token-file", "", "`file` holding the GitLab API token (default $GITLAB_TOKEN)")
	secretFile := fs.String("secret-file", "", "`file` holding the webhook secret token (default $GITLAB_WEBHOOK_SECRET)")
	signingFile := fs.String("signing-token-file", "", "`file` holding the webhook signing token (whsec_...); when set, deliveries must be signed")
	versionFile := fs.String("version-file", "VERSION", "`path` of the version in the repository; package.json is read as JSON")
	versionRe := fs.String("version-regexp", "", "`regexp` whose first group is the version inside -version-file")
	labels := fs.String("labels", defaultLabels, "the five workflow `labels`, in board order, comma-separated")
	scope := fs.String("scope", "", "prefix the workflow labels with `scope`:: (scoped labels)")
	reopen := fs.Bool("reopen-on-merge", false, "reopen at To Test the issues GitLab closes when an MR merges")
	backwards := fs.Bool("allow-backwards", false, "let events move issues to an earlier state")
	workers := fs.Int("workers", 8, "deliveries handled at once (-intake memory)")
	intakeKind := fs.String("intake", "jetstream", "where accepted deliveries wait: `jetstream` (durable) or memory")
	dataDir := fs.String("data-dir", natsconn.DefaultDataDir("gitlab-hooks"), "`directory` of the embedded JetStream server's files (without -nats-url)")
	natsURL := fs.String("nats-url", "", "NATS cluster `URLs`, comma-separated; empty runs an embedded server")
	natsCreds := fs.String("nats-creds", "", "NATS credentials `file` (.creds) for -nats-url")
	natsTokenFile := fs.String("nats-token-file", "", "`file` holding a NATS token for -nats-url")
	streamReplicas := fs.Int("stream-replicas", 1, "JetStream stream replicas (3 for a three-node cluster)")
	partitions := fs.Int("partitions", 32, "JetStream partitions: the most deliveries handled at once across all replicas")
	pinnedTTL := fs.Duration("pinned-ttl", 15*time.Second, "JetStream: how long the partitions of a replica that stopped wait before another replica takes them over")
	syncAlways := fs.Bool("sync-always", false, "embedded JetStream: fsync every delivery before answering (survives power loss, not just a crash)")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "JetStream: how long a replica may be silent before its delivery goes to another (or, after a crash, runs again)")
	metricsAddr := fs.String("metrics-addr", "", "serve GET /metrics on this `address` (e.g. 127.0.0.1:9101), apart from -addr")
	logFormat := telemetry.LogFormatFlag(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	if *gitlabURL == "" {
		return cli.Usagef(fs, "-gitlab-url is required")
	}
	if *intakeKind != "jetstream" && *intakeKind != "memory" {
		return cli.Usagef(fs, "-intake must be jetstream or memory")
	}
	if *natsURL == "" && (*natsCreds != "" || *natsTokenFile != "") {
		return cli.Usagef(fs, "-nats-creds and -nats-token-file need -nats-url")
	}
	if *natsURL == "" && *intakeKind == "jetstream" && *dataDir == "" {
		return cli.Usagef(fs, "-data-dir is required for the embedded JetStream server")
	}
	names := strings.Split(*labels, ",")
	if len(names) != 5 {
		return cli.Usagef(fs, "-labels needs five labels, got %d", len(names))
	}
	var source gitlabx.VersionSource
	switch {
	case *versionRe != "":
		re, err := regexp.Compile(*versionRe)
		if err != nil || re.NumSubexp() < 1 {
			return cli.Usagef(fs, "-version-regexp must compile and have a capture group")
		}
		source = gitlabx.VersionRegexp(*versionFile, re)
	case path.Base(*versionFile) == "package.json":
		source = gitlabx.PackageJSON(*versionFile)
	default:
		source = gitlabx.VersionFile(*versionFile)
	}
	token, err := readSecret(*tokenFile, "GITLAB_TOKEN", "token")
	if err != nil {
		return err
	}
	hookSecret, err := readSecret(*secretFile, "GITLAB_WEBHOOK_SECRET", "secret")
	if err != nil {
		return err
	}
	var signing opskit.Secret
	if *signingFile != "" {
		if signing, err = readSecret(*signingFile, "", "signing token"); err != nil {
			return err
		}
	}

	log, err := telemetry.NewLogger(stderr, *logFormat, slog.LevelInfo)
	if err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	shutdownTracing, err := telemetry.SetupTracing(ctx, "opskit-gitlab-hooks")
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx))
	tp := otel.GetTracerProvider()
	reg := telemetry.NewRegistry()
	glHTTP, metrics, err := instrument(reg, tp)
	if err != nil {
		return err
	}
	client, err := gitlab.NewClient(token.Reveal(), gitlab.WithBaseURL(*gitlabURL), gitlab.WithHTTPClient(glHTTP))
	if err != nil {
		return fmt.Errorf("gitlab client: %w", err)
	}
	bot, _, err := client.Users.CurrentUser(gitlab.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("checking the GitLab token: %w", err)
	}
	var intake gitlabx.Intake
	if *intakeKind == "jetstream" {
		nc, closeNATS, err := natsconn.Connect(natsconn.Config{Name: "gitlab-hooks", URL: *natsURL, CredsFile: *natsCreds, TokenFile: *natsTokenFile, DataDir: *dataDir, SyncAlways: *syncAlways})
		if err != nil {
			return err
		}
		defer closeNATS() // after hooks.Shutdown below
		in, err := jetstream.New(ctx, jetstream.Config{Conn: nc, Partitions: *partitions, Replicas: *streamReplicas, AckWait: *ackWait, PinnedTTL: *pinnedTTL, Logger: log})
		if err != nil {
			return err
		}
		intake = in
	}
	hooks, err := gitlabx.NewHooks(gitlabx.HooksConfig{
		Token: gitlabx.Secret(hookSecret.Reveal()), SigningToken: gitlabx.Secret(signing.Reveal()), Intake: intake,
		BotUserID: bot.ID, BotUsername: bot.Username, Workers: *workers, Logger: log,
		Metrics: metrics, TracerProvider: tp,
	})
	if err != nil {
		return err
	}
	check, err := gitlabx.NewVersionCheck(client, gitlabx.VersionCheckConfig{Source: source, Logger: log})
	if err != nil {
		return err
	}
	stateLabels := map[gitlabx.State]string{}
	for i, s := range gitlabx.DefaultStates() {
		l := strings.TrimSpace(names[i])
		if *scope != "" {
			l = *scope + "::" + l
		}
		stateLabels[s] = l
	}
	machine, err := gitlabx.NewLabelMachine(client, gitlabx.LabelMachineConfig{
		Labels: stateLabels, ReopenOnMerge: *reopen, AllowBackwards: *backwards, Logger: log,
	})
	if err != nil {
		return err
	}
	check.Register(hooks)
	machine.Register(hooks)
	if err := hooks.Start(); err != nil { // runs what was stored before a restart
		return err
	}

	ms, err := telemetry.StartMetrics(ctx, *metricsAddr, reg, log)
	if err != nil {
		return err
	}
	defer ms.Close()
	if ms != nil {
		fmt.Fprintf(stdout, "gitlab-hooks: metrics on http://%s/metrics\n", ms.Addr())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: withStats(hooks), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "gitlab-hooks: listening on http://%s as %s\n", ln.Addr(), bot.Username)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	// Finish the accepted deliveries first, with the listener still up:
	// GitLab counts a refused connection toward disabling the hook like a
	// 5xx, and keeps sending while we stop. What arrives meanwhile is
	// answered 202 and stored (JetStream: handled on the next start or by
	// another replica) or dropped and logged (memory). Then stop listening.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	herr := hooks.Shutdown(sctx)
	srv.Shutdown(sctx)
	s := hooks.Stats()
	fmt.Fprintf(stdout, "gitlab-hooks: accepted %d, done %d, failed %d, duplicates %d, ignored %d, rejected %d, dropped %d, pending %d\n",
		s.Accepted, s.Done, s.Failed, s.Duplicate, s.Ignored, s.Rejected, s.Dropped, s.Intake.Pending)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return herr
}

// instrument returns the GitLab API client's HTTP client, counting and
// tracing its calls, and the receiver's metrics, all on reg.
func instrument(reg *prometheus.Registry, tp trace.TracerProvider) (*http.Client, *gitlabx.Metrics, error) {
	glm, err := observe.NewClientMetrics(reg, "gitlab")
	if err != nil {
		return nil, nil, err
	}
	m, err := gitlabx.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	return &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: glm, TracerProvider: tp})}, m, nil
}

// withStats serves GET /stats (the delivery counters, the stream's depth
// and the redeliveries, as JSON) beside the webhooks on every other request.
func withStats(hooks *gitlabx.Hooks) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/stats" {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(hooks.Stats())
			return
		}
		hooks.ServeHTTP(w, r)
	})
}
