package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/examples/internal/lbrollout"
	"github.com/opskit/opskit/workflow"
)

// The control subcommands talk to a running rollout through a unix socket
// next to its journal (JOURNAL.sock), over HTTP: GET /status, POST /pause,
// /resume, /promote and /abort (?cancel-in-flight=true).
var controlCommands = []string{"status", "pause", "resume", "promote", "abort"}

func isControlCommand(arg string) bool {
	for _, c := range controlCommands {
		if arg == c {
			return true
		}
	}
	return false
}

// socketPath is where a rollout journaled to journal listens for control.
func socketPath(journal string) string { return journal + ".sock" }

// serveControl serves ctl on a unix socket at path (mode 0600). The
// journal is locked by this process, so a socket file left there is
// stale and is replaced. The caller must call the returned stop.
func serveControl(path string, ctl *workflow.Control) (stop func(), err error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ctl.Status())
	})
	for name, fn := range map[string]func(r *http.Request){
		"pause":   func(*http.Request) { ctl.Pause() },
		"resume":  func(*http.Request) { ctl.Resume() },
		"promote": func(*http.Request) { ctl.Promote() },
		"abort":   func(r *http.Request) { ctl.Abort(r.URL.Query().Get("cancel-in-flight") == "true") },
	} {
		mux.HandleFunc("POST /"+name, func(w http.ResponseWriter, r *http.Request) {
			fn(r)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		srv.Close()
		<-done
		os.Remove(path)
	}, nil
}

// runControl runs a control subcommand (args[0]) against the rollout
// journaled to -journal.
func runControl(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := args[0]
	fs := cli.NewFlagSet("rollout "+cmd, stderr, "Usage:\n  rollout status|pause|resume|promote [-journal F]\n  rollout abort [-journal F] [-cancel-in-flight]\n\n"+
		"Steers the rollout running with -journal F, through the unix socket F.sock.\n\nFlags:\n")
	journal := fs.String("journal", "rollout.journal", "journal `file` of the running rollout")
	cancelInFlight := fs.Bool("cancel-in-flight", false, "abort: cancel the backends in progress instead of letting them finish")
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	if *cancelInFlight && cmd != "abort" {
		return cli.Usagef(fs, "-cancel-in-flight goes with abort only")
	}
	sock := socketPath(*journal)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	method, path := http.MethodPost, "/"+cmd
	switch {
	case cmd == "status":
		method = http.MethodGet
	case cmd == "abort" && *cancelInFlight:
		path += "?cancel-in-flight=true"
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://rollout"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no rollout running with journal %s (control socket %s): %w", *journal, sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", cmd, resp.Status)
	}
	if cmd != "status" {
		fmt.Fprintln(stdout, map[string]string{"pause": "paused", "resume": "resumed", "promote": "promoted", "abort": "abort sent"}[cmd])
		return nil
	}
	var st workflow.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	lbrollout.PrintStatus(stdout, st)
	return nil
}
