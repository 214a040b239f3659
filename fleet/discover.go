package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultMaxAddrs is ExpandCIDR's limit when it is given 0.
const DefaultMaxAddrs = 65536

var (
	// ErrBadPrefix: the text is neither an address nor a CIDR prefix.
	ErrBadPrefix = errors.New("fleet: bad CIDR prefix")
	// ErrTooManyAddrs: the prefix holds more host addresses than the limit
	// (an IPv6 /64 holds 2^64).
	ErrTooManyAddrs = errors.New("fleet: prefix holds too many addresses")
)

// ExpandCIDR lists the host addresses of an IPv4 or IPv6 prefix
// ("10.0.0.0/24", "2001:db8::/120", or a bare address), in order.
//
// For IPv4 the network and broadcast addresses are left out, except in
// a /31 (two usable addresses, RFC 3021) and a /32 (one). For IPv6 every
// address is listed. Host bits set in the prefix are ignored
// ("10.0.0.7/30" is 10.0.0.4/30). A prefix with more than limit host
// addresses is an error matching ErrTooManyAddrs; limit 0 means
// DefaultMaxAddrs.
func ExpandCIDR(cidr string, limit int) ([]netip.Addr, error) {
	if limit <= 0 {
		limit = DefaultMaxAddrs
	}
	cidr = strings.TrimSpace(cidr)
	var p netip.Prefix
	var err error
	if strings.Contains(cidr, "/") {
		p, err = netip.ParsePrefix(cidr)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(cidr)
		if err == nil && a.Zone() != "" {
			return nil, fmt.Errorf("%w %q: zones are not supported", ErrBadPrefix, cidr)
		}
		if err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadPrefix, cidr, err)
	}
	if p.Addr().Is4In6() {
		return nil, fmt.Errorf("%w %q: IPv4-mapped IPv6; write the IPv4 prefix", ErrBadPrefix, cidr)
	}
	if p.Addr().Zone() != "" {
		return nil, fmt.Errorf("%w %q: zones are not supported", ErrBadPrefix, cidr)
	}
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	skipEnds := p.Addr().Is4() && hostBits >= 2
	if hostBits > 62 {
		return nil, fmt.Errorf("%w: %s has 2^%d addresses, limit %d", ErrTooManyAddrs, p, hostBits, limit)
	}
	n := 1 << hostBits
	a := p.Addr()
	if skipEnds {
		n -= 2
		a = a.Next()
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %s has %d host addresses, limit %d", ErrTooManyAddrs, p, n, limit)
	}
	out := make([]netip.Addr, 0, n)
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out, nil
}

// Prober finds live hosts. The zero value probes TCP port 22 with a 2s
// timeout, 256 addresses at a time.
type Prober struct {
	// Port is the TCP port to connect to; 0 means 22.
	Port int
	// Timeout bounds each probe; 0 means 2s.
	Timeout time.Duration
	// Concurrency is the number of probes in flight; 0 means 256.
	Concurrency int
	// Ping, when set, probes with one ICMP echo (ping -c 1 -W) instead of
	// TCP. It needs the ping program (and its privileges); TCP needs none.
	Ping bool
}

// Alive probes every address and returns those that answered, in input
// order. It stops early only when ctx ends, returning what was found so
// far and an error matching context.Canceled or ErrTimeout.
func (p *Prober) Alive(ctx context.Context, addrs []netip.Addr) ([]netip.Addr, error) {
	if p.Ping {
		var l Local
		if err := l.Check("ping"); err != nil {
			return nil, err
		}
	}
	ok := make([]bool, len(addrs))
	var eg errgroup.Group
	n := p.Concurrency
	if n <= 0 {
		n = 256
	}
	eg.SetLimit(n)
	var mu sync.Mutex
	for i, a := range addrs {
		if ctx.Err() != nil {
			break
		}
		eg.Go(func() error {
			if err := p.Probe(ctx, a); err == nil {
				mu.Lock()
				ok[i] = true
				mu.Unlock()
			}
			return nil
		})
	}
	eg.Wait()
	var out []netip.Addr
	for i, a := range addrs {
		if ok[i] {
			out = append(out, a)
		}
	}
	if ctx.Err() != nil {
		return out, ctxError("probe", ctx)
	}
	return out, nil
}

// Probe checks one address: a TCP connection to Port accepted, or with
// Ping an echo reply. It returns nil when the host is alive, else a
// *HostError matching ErrUnreachable (or ErrTimeout, context.Canceled).
func (p *Prober) Probe(ctx context.Context, a netip.Addr) error {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if p.Ping {
		return Ping(ctx, a, timeout)
	}
	port := p.Port
	if port == 0 {
		port = 22
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(pctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
	if err != nil {
		if ctx.Err() != nil {
			return ctxError(a.String(), ctx)
		}
		return &HostError{Host: a.String(), Kind: ErrUnreachable, Err: err}
	}
	return c.Close()
}

// Ping sends one ICMP echo to a with ping(8), waiting at most timeout for
// the reply (ping -W, which on Linux is the reply timeout; -t there sets
// the TTL). It returns nil on a reply, a *MissingProgramsError when ping
// is not installed, else a *HostError matching ErrUnreachable.
func Ping(ctx context.Context, a netip.Addr, timeout time.Duration) error {
	secs := max(1, int(math.Ceil(timeout.Seconds())))
	var l Local
	if err := l.Check("ping"); err != nil {
		return err
	}
	// The ping's own -W bounds the wait; ctx bounds the process.
	c := exec.CommandContext(ctx, "ping", "-n", "-q", "-c", "1", "-W", strconv.Itoa(secs), a.String())
	c.WaitDelay = time.Second
	out, err := c.CombinedOutput()
	if ctx.Err() != nil {
		return ctxError(a.String(), ctx)
	}
	if err != nil {
		return &HostError{Host: a.String(), Kind: ErrUnreachable, Err: fmt.Errorf("ping: %v: %s", err, strings.TrimSpace(tail(string(out), 200)))}
	}
	return nil
}
