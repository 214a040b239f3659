package lbrollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
)

// Config is the rollout's JSON configuration, as in the talk.
type Config struct {
	// Concurrency is how many backends are upgraded at once after the canaries.
	Concurrency int
	// CanaryNum is how many backends go first, one at a time.
	CanaryNum int
	// MaxFailures is how many failed backends are tolerated.
	MaxFailures int
	// Src is the local path of the new binary.
	Src string
	// LB is the load balancer's admin address, host:port; its pool is
	// changed with POST /lb/pool/remove?backend=B and /lb/pool/add?backend=B.
	LB string
	// Pattern matches the job's process on a backend (pkill -f PATTERN
	// stops it).
	Pattern string
	// Backends are the backends' service addresses, host:port. The job
	// must answer HTTP GET / there; SSH goes to the same host.
	Backends []string
	// Dst is where the binary goes on each backend; "" means
	// /usr/local/bin/ plus Src's base name.
	Dst string `json:",omitempty"`
}

// ErrConfig marks a configuration the rollout refuses.
var ErrConfig = errors.New("rollout: bad config")

// LoadConfig reads and validates the JSON configuration at file.
func LoadConfig(file string) (Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(b)
}

func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	if c.Dst == "" && c.Src != "" {
		c.Dst = "/usr/local/bin/" + path.Base(c.Src)
	}
	return c, c.validate()
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Concurrency < 1:
		return bad("Concurrency must be at least 1, got %d", c.Concurrency)
	case c.CanaryNum < 0:
		return bad("CanaryNum must not be negative, got %d", c.CanaryNum)
	case c.MaxFailures < 0:
		return bad("MaxFailures must not be negative, got %d", c.MaxFailures)
	case c.Src == "":
		return bad("Src (the new binary) is missing")
	case c.Pattern == "":
		return bad("Pattern (the job's process pattern) is missing")
	case len(c.Backends) == 0:
		return bad("Backends is empty")
	case c.CanaryNum > len(c.Backends):
		return bad("CanaryNum %d is more than the %d backends", c.CanaryNum, len(c.Backends))
	case !path.IsAbs(c.Dst):
		return bad("Dst %q is not an absolute path", c.Dst)
	}
	if st, err := os.Stat(c.Src); err != nil {
		return bad("Src: %v", err)
	} else if !st.Mode().IsRegular() {
		return bad("Src %s is not a regular file", c.Src)
	}
	if _, _, err := net.SplitHostPort(c.LB); err != nil {
		return bad("LB %q is not host:port: %v", c.LB, err)
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return bad("Backends[%d] %q is not host:port: %v", i, b, err)
		}
		if seen[b] {
			return bad("backend %s is listed twice", b)
		}
		seen[b] = true
	}
	return nil
}
