// Package natsconn is how the service examples (gitlab-hooks,
// freshdesk-bridge) reach NATS JetStream: a cluster at a URL with
// credentials from files, or else an embedded server whose files live in
// a data directory, so one replica is durable with no setup.
//
// # Testing
//
// The examples' tests run both modes: embedded per test, and a real
// nats-server process in gitlab-hooks' replica test.
package natsconn

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/gitlabx/jetstream"
)

// DefaultDataDir is systemd's $STATE_DIRECTORY (its first entry) when set,
// else ./NAME-data.
func DefaultDataDir(name string) string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	return name + "-data"
}

// Config says where JetStream is.
type Config struct {
	Name       string // the client's name in the server's connection list
	URL        string // a NATS cluster; "" starts an embedded server in DataDir
	CredsFile  string // a NATS credentials file for URL, optional
	TokenFile  string // a file whose first line is a NATS token for URL, optional
	DataDir    string // the embedded server's storage
	SyncAlways bool   // the embedded server fsyncs every message
}

// Connect connects to the cluster at c.URL, or starts an embedded
// JetStream server with its files in c.DataDir. The caller must call close
// when finished: it closes the connection, and the embedded server if one
// was started. Errors name what failed; the token never appears in them.
func Connect(c Config) (nc *nats.Conn, close func(), err error) {
	if c.URL == "" {
		emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: c.DataDir, SyncAlways: c.SyncAlways})
		if err != nil {
			return nil, nil, err
		}
		return emb.Conn(), emb.Close, nil
	}
	opts := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1)}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TokenFile != "" {
		tok, err := opskit.SecretFromFile(c.TokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("nats token: %w", err)
		}
		opts = append(opts, nats.Token(tok.Reveal()))
	}
	nc, err = nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	return nc, nc.Close, nil
}
