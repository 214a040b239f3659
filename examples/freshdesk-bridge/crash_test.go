package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

const crashArgsEnv = "FRESHDESK_BRIDGE_CRASH_ARGS"

// TestCrashHelper is the freshdesk-bridge process that
// TestEmbeddedCrashFinishesAcceptedEscalations kills; it runs only as that
// test's subprocess.
func TestCrashHelper(t *testing.T) {
	raw := os.Getenv(crashArgsEnv)
	if raw == "" {
		t.Skip("runs only as the subprocess of TestEmbeddedCrashFinishesAcceptedEscalations")
	}
	var args []string
	require.NoError(t, json.Unmarshal([]byte(raw), &args))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	require.NoError(t, run(ctx, args, os.Getenv, os.Stdout, os.Stderr))
}

// startBridge runs freshdesk-bridge in a subprocess with env and returns
// it and its URL.
func startBridge(t *testing.T, args []string, env map[string]string) (*exec.Cmd, string) {
	t.Helper()
	raw, err := json.Marshal(args)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashArgsEnv+"="+string(raw))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, strings.Fields(rest)[0]
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("freshdesk-bridge never said it was listening")
	return nil, ""
}

// TestEmbeddedCrashFinishesAcceptedEscalations presses the button on
// several tickets of a bridge with its embedded JetStream server, SIGKILLs
// the bridge while the accepted escalations are still running or waiting,
// starts it again on the same -data-dir, and checks that every escalation
// answered "queued" is finished after the restart and reported through
// GET /escalations/{id}: each ticket has exactly one issue with each
// conversation copied once, and one link-back note.
func TestEmbeddedCrashFinishesAcceptedEscalations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	const tickets = 6
	f := setup(t)
	ids := []int64{f.ticket}
	for i := 1; i < tickets; i++ {
		tk := f.fd.AddTicket(freshdesktest.Ticket{Subject: fmt.Sprintf("Export fails %d", i), Description: "<p>since 5.2</p>"})
		f.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>log attached</p>", Incoming: true,
			Attachments: []freshdesktest.Attachment{{Name: "x.log", Content: []byte("boom")}}})
		f.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>still failing</p>", Incoming: true})
		ids = append(ids, tk.ID)
	}
	f.gl.SetLatency(300 * time.Millisecond) // escalations take seconds: the kill lands before they finish
	args := f.args("-addr", "127.0.0.1:0", "-partitions", "4", "-ack-wait", "2s", "-pinned-ttl", "1s")

	cmd, base := startBridge(t, args, f.env)
	queued := map[string]int64{}
	for _, tk := range append(ids, f.ticket) { // the first ticket twice
		req, _ := http.NewRequestWithContext(t.Context(), "POST", fmt.Sprintf("%s/escalate/%d", base, tk), nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "ticket %d: %v", tk, body)
		queued[body["id"].(string)] = tk
	}
	linked := func() (n int) {
		for _, tk := range ids {
			for _, c := range f.fd.Conversations(tk) {
				if strings.Contains(c.Body, freshdesk.BridgePrefix) {
					n++
				}
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return len(f.gl.Issues(7)) > 0 }, time.Minute, 5*time.Millisecond,
		"escalations are under way: an issue was created")
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no Shutdown, no flush
	cmd.Wait()
	atKill := linked()
	t.Logf("at the kill: %d issues created, %d of %d tickets fully escalated", len(f.gl.Issues(7)), atKill, tickets)
	require.Less(t, atKill, tickets, "the kill came while accepted escalations were unfinished")

	f.gl.SetLatency(0)
	cmd, base = startBridge(t, args, f.env)
	for id, tk := range queued {
		got := waitResult(t, base, "s3cret", id)
		assert.Equal(t, "done", got["status"], "escalation %s of ticket %d after the restart: %v", id, tk, got)
	}
	issues := f.gl.Issues(7)
	assert.Len(t, issues, tickets, "one issue per ticket")
	for _, is := range issues {
		notes := f.gl.Notes(7, gitlabtest.IssueNoteable, is.IID)
		var copied []string
		for _, n := range notes {
			if strings.HasPrefix(n.Body, "<!-- opskit:freshdesk-conversation=") {
				copied = append(copied, strings.SplitN(n.Body, " ", 3)[1])
			}
		}
		want := 2
		if strings.Contains(is.Description, fmt.Sprintf("freshdesk-ticket=%d ", f.ticket)) {
			want = 1
		}
		assert.Len(t, copied, want, "issue %d (%s): each conversation copied once: %q", is.IID, is.Title, copied)
	}
	assert.Equal(t, tickets, linked(), "one link-back note per ticket")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.NoError(t, cmd.Wait(), "freshdesk-bridge stops cleanly on SIGTERM")
}
