// Command release-server serves the release API: POST /release stores
// uploads as DIR/<product>/<version>/{release.tgz,release.env} and runs the
// hook script; GET /releases/<product>/<version>/release.tgz serves them.
//
// Usage:
//
//	release-server -dir DIR -secret-file F [-addr 127.0.0.1:8080] [-hook SCRIPT] [-max-size BYTES]
//	               [-s3-endpoint URL -bucket B [-s3-credentials-file F] [-server-id ID]]
//	               [-metrics-addr HOST:PORT] [-log-format text|json]
//
// With -s3-endpoint the releases live in the bucket (package
// release/s3store) and DIR only stages uploads; several servers may share
// the bucket (each with its own -server-id): a release is stored once and
// its hook runs once, on the server that stored it.
//
// The secret file holds one accepted secret per line (several lines rotate
// secrets; blank lines and lines starting with # are ignored). Without
// -secret-file the secret comes from $RELEASE_SECRET. The hook script gets
// the paths of release.env and release.tgz as arguments. The server prints
// "listening on URL" on stdout once it accepts connections and logs to
// stderr. At startup it runs the hook again for releases whose hook a crash
// cut off (they are not served until it succeeded). See
// release-server.service for running it under systemd.
//
// Observability: -metrics-addr serves GET /metrics (the receiver's
// opskit_release_* counters, go_* and process_*) on a listener of its own,
// since -addr faces the build servers; its address is printed as "metrics
// on URL" after the listening line. -log-format json logs JSON with trace_id
// and span_id (-log-json is its old name). Traces follow the OTEL_*
// environment variables (see examples/internal/telemetry; no exporter unless
// they ask for one): a span per upload request, the hook as its child.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.opentelemetry.io/otel"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/telemetry"
	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/s3store"
)

func main() {
	cli.Main("release-server", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}, syscall.SIGTERM)
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("release-server", stderr, "Usage: release-server -dir DIR -secret-file F [-addr 127.0.0.1:8080] [-hook SCRIPT] [-max-size BYTES] [-s3-endpoint URL -bucket B]\n\nServes the release API: POST /release, resumable uploads (tus 1.0) at /release/uploads/, GET /releases/<product>/<version>/release.tgz.\n\nFlags:\n")
	dir := fs.String("dir", "", "store releases under `DIR` (required; must exist)")
	secretFile := fs.String("secret-file", "", "read accepted secrets from `FILE`, one per line (default: $RELEASE_SECRET)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `host:port`")
	hook := fs.String("hook", "", "run `SCRIPT` release.env release.tgz after each new release")
	hookTimeout := fs.Duration("hook-timeout", release.DefaultHookTimeout, "kill the hook script after this long")
	maxSize := fs.Int64("max-size", release.DefaultMaxSize, "refuse tarballs larger than `BYTES` (413)")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text (the same as -log-format json)")
	logFormat := telemetry.LogFormatFlag(fs)
	metricsAddr := fs.String("metrics-addr", "", "serve GET /metrics on this `address` (e.g. 127.0.0.1:9103), apart from -addr")
	maxUploads := fs.Int("max-uploads", release.DefaultMaxConcurrentUploads, "uploads in progress at most; more get 503 with Retry-After")
	uploadTimeout := fs.Duration("upload-timeout", time.Hour, "abort an upload that takes longer than this in all")
	s3Endpoint := fs.String("s3-endpoint", "", "store releases in S3 at `URL` (http://host:port or https://host) instead of under -dir, which then only stages uploads")
	bucket := fs.String("bucket", "", "S3 `bucket` (required with -s3-endpoint; must exist)")
	s3Prefix := fs.String("s3-prefix", "", "put `PREFIX` before every S3 key")
	s3Region := fs.String("s3-region", "us-east-1", "S3 `region`")
	s3Creds := fs.String("s3-credentials-file", "", "read AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines from `FILE` (default: those environment variables)")
	serverID := fs.String("server-id", "", "name this server's hook leases in the bucket; unique per server, stable across restarts (default: host name)")
	files := fs.Bool("files", true, "serve stored releases read-only, without a secret, at GET /releases/ (for release-fetch)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *dir == "" {
		return cli.Usagef(fs, "-dir is required and no arguments are accepted")
	}
	if (*s3Endpoint == "") != (*bucket == "") {
		return cli.Usagef(fs, "-s3-endpoint and -bucket go together")
	}
	secrets, err := readSecrets(*secretFile)
	if err != nil {
		return err
	}
	if *logJSON {
		*logFormat = "json"
	}
	log, err := telemetry.NewLogger(stderr, *logFormat, slog.LevelInfo)
	if err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	shutdownTracing, err := telemetry.SetupTracing(ctx, "opskit-release-server")
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx))
	reg := telemetry.NewRegistry()
	metrics, err := release.NewMetrics(reg)
	if err != nil {
		return err
	}
	cfg := release.ReceiverConfig{Dir: *dir, Secrets: secrets, MaxSize: *maxSize, Logger: log,
		MaxConcurrentUploads: *maxUploads, UploadTimeout: *uploadTimeout,
		Metrics: metrics, TracerProvider: otel.GetTracerProvider()}
	if *hook != "" {
		fi, err := os.Stat(*hook)
		if err != nil {
			return fmt.Errorf("hook: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("hook %s is not an executable file", *hook)
		}
		cfg.Hook = release.ScriptHook(*hook, *hookTimeout, log)
	}
	if *s3Endpoint != "" {
		st, err := newS3Store(*s3Endpoint, *bucket, *s3Prefix, *s3Region, *s3Creds, *serverID)
		if err != nil {
			return err
		}
		cfg.Store = st
	}
	rc, err := release.NewReceiver(cfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /release", rc)
	mux.Handle("/release/uploads/", rc.Uploads()) // resumable uploads (tus 1.0)
	if *files {
		mux.Handle("GET /releases/", http.StripPrefix("/releases", rc.Files()))
	}

	ms, err := telemetry.StartMetrics(ctx, *metricsAddr, reg, log)
	if err != nil {
		return err
	}
	defer ms.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10, // unauthenticated connections stay cheap
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// Releases whose hook was cut off by a crash get it run again; until
	// then they are not served.
	go func() {
		if n, err := rc.RunPendingHooks(ctx); n > 0 || err != nil {
			log.Info("release hooks left from before a restart ran again", "count", n, "error", err)
		}
	}()
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	if ms != nil {
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ms.Addr())
	}
	log.Info("release-server started", "addr", ln.Addr().String(), "dir", *dir, "s3", *s3Endpoint, "bucket", *bucket, "secrets", len(secrets), "hook", *hook)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("release-server stopping; waiting for uploads in flight")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// readSecrets reads one secret per line from path, or $RELEASE_SECRET when
// path is empty.
func readSecrets(path string) ([]release.Secret, error) {
	if path == "" {
		s := os.Getenv("RELEASE_SECRET")
		if s == "" {
			return nil, errors.New("no secret: give -secret-file or set RELEASE_SECRET")
		}
		return []release.Secret{release.Secret(s)}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []release.Secret
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, release.Secret(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no secret", path)
	}
	return out, nil
}

// newS3Store connects the S3 store; credentials come from credsFile or the
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables.
func newS3Store(endpoint, bucket, prefix, region, credsFile, serverID string) (*s3store.Store, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-s3-endpoint %q: want http://host:port or https://host", endpoint)
	}
	vars := map[string]string{"AWS_ACCESS_KEY_ID": os.Getenv("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": os.Getenv("AWS_SECRET_ACCESS_KEY")}
	if credsFile != "" {
		data, err := os.ReadFile(credsFile)
		if err != nil {
			return nil, err
		}
		vars = map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	if vars["AWS_ACCESS_KEY_ID"] == "" || vars["AWS_SECRET_ACCESS_KEY"] == "" {
		return nil, errors.New("no S3 credentials: give -s3-credentials-file or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	mc, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"], ""),
		Secure: u.Scheme == "https",
		Region: region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return s3store.New(s3store.Config{Client: mc, Bucket: bucket, Prefix: prefix, ServerID: serverID})
}
