package jetstream

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures an embedded NATS server with JetStream.
// DataDir is required.
type EmbeddedConfig struct {
	// DataDir holds JetStream's files. A restart with the same DataDir
	// finds every delivery stored and not yet handled.
	DataDir string
	// SyncAlways makes JetStream fsync every delivery before it answers,
	// so that deliveries survive a power loss too, not just a crash of the
	// process. It costs about half a millisecond per delivery. The default
	// (false) syncs every two minutes, like nats-server.
	SyncAlways bool
	// MaxPayload is the largest message the server accepts, headers
	// included; keep it above gitlabx.HooksConfig.MaxBodyBytes. 0 means
	// 16 MiB.
	MaxPayload int32
	// Listen, when set (for example "127.0.0.1:4222"; port 0 picks a free
	// one), also serves NATS clients on that address. The default serves
	// this process only, with no network port.
	Listen string
}

// Embedded is a NATS server with JetStream inside this process, for a
// single replica that needs no setup. The caller must call Close when
// finished.
type Embedded struct {
	srv  *server.Server
	conn *nats.Conn
}

// StartEmbedded starts the server and connects to it in process. The error
// wraps ErrConfig when DataDir is empty; other errors come from the server.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: embedded server needs a data directory", ErrConfig)
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 16 << 20
	}
	opts := &server.Options{
		ServerName: "gitlabx-embedded",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: cfg.SyncAlways,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream: embedded server not ready after 30s")
	}
	conn, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("gitlabx"))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream: connecting to the embedded server: %w", err)
	}
	return &Embedded{srv: srv, conn: conn}, nil
}

// Conn is the in-process connection to the server, for Config.Conn. Close
// closes it.
func (e *Embedded) Conn() *nats.Conn { return e.conn }

// ClientURL is the address other processes reach the server at, or "" when
// EmbeddedConfig.Listen was empty.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Close closes the connection and stops the server, flushing JetStream's
// files. Call it after gitlabx.Hooks.Shutdown.
func (e *Embedded) Close() {
	e.conn.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: listen address %q: %v", ErrConfig, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("%w: listen address %q: bad port", ErrConfig, addr)
	}
	return host, port, nil
}
