package fleet_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
)

func TestExpandCIDR(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		first string
		last  string
		n     int
		err   error
	}{
		{in: "10.0.0.0/30", first: "10.0.0.1", last: "10.0.0.2", n: 2},
		{in: "10.0.0.0/31", first: "10.0.0.0", last: "10.0.0.1", n: 2},
		{in: "10.0.0.9/32", first: "10.0.0.9", last: "10.0.0.9", n: 1},
		{in: "10.0.0.9", first: "10.0.0.9", last: "10.0.0.9", n: 1},
		{in: "10.0.0.7/30", first: "10.0.0.5", last: "10.0.0.6", n: 2},
		{in: "192.168.1.0/24", first: "192.168.1.1", last: "192.168.1.254", n: 254},
		{in: "10.0.0.0/16", first: "10.0.0.1", last: "10.0.255.254", n: 65534},
		{in: "2001:db8::/126", first: "2001:db8::", last: "2001:db8::3", n: 4},
		{in: "2001:db8::/127", first: "2001:db8::", last: "2001:db8::1", n: 2},
		{in: "2001:db8::1/128", first: "2001:db8::1", last: "2001:db8::1", n: 1},
		{in: "2001:db8::/120", limit: 100, err: fleet.ErrTooManyAddrs},
		{in: "2001:db8::/64", err: fleet.ErrTooManyAddrs},
		{in: "::/0", err: fleet.ErrTooManyAddrs},
		{in: "10.0.0.0/8", err: fleet.ErrTooManyAddrs},
		{in: "10.0.0.0/24", limit: 254, first: "10.0.0.1", last: "10.0.0.254", n: 254},
		{in: "10.0.0.0/24", limit: 253, err: fleet.ErrTooManyAddrs},
		{in: "10.0.0.0/33", err: fleet.ErrBadPrefix},
		{in: "web1", err: fleet.ErrBadPrefix},
		{in: "", err: fleet.ErrBadPrefix},
		{in: "::ffff:10.0.0.0/120", err: fleet.ErrBadPrefix},
		{in: "fe80::1%eth0", err: fleet.ErrBadPrefix},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := fleet.ExpandCIDR(tc.in, tc.limit)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, tc.n)
			assert.Equal(t, tc.first, got[0].String())
			assert.Equal(t, tc.last, got[len(got)-1].String())
		})
	}
}

func FuzzExpandCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/30", "10.0.0.0/31", "1.2.3.4/32", "2001:db8::/120", "::/0", "x", "10.0.0.7/29", "0.0.0.0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := fleet.ExpandCIDR(s, 1024)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) > 1024 {
			t.Fatalf("ExpandCIDR(%q) gave %d addresses", s, len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Less(got[i-1]) || got[i] == got[i-1] {
				t.Fatalf("ExpandCIDR(%q) not strictly increasing at %d", s, i)
			}
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			for _, a := range got {
				if !p.Masked().Contains(a) {
					t.Fatalf("ExpandCIDR(%q) gave %s outside the prefix", s, a)
				}
			}
		}
	})
}

func TestProberTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// 127.0.0.1 listens on port; 127.0.0.2 (loopback too) does not.
	p := fleet.Prober{Port: port}
	alive, err := p.Alive(t.Context(), []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")})
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, alive)
	require.ErrorIs(t, p.Probe(t.Context(), netip.MustParseAddr("127.0.0.2")), fleet.ErrUnreachable)
}

func TestProberCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := (&fleet.Prober{}).Alive(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	require.ErrorIs(t, err, context.Canceled)
}

// TestPing runs Ping against a stand-in ping(8) on PATH that records its
// arguments, so that the timeout flag is checked without privileges.
func TestPing(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" > " + dir + "/args\ncase \"$*\" in *10.9.9.9*) exit 1;; esac\nexit 0\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ping"), []byte(script), 0o755))
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	require.NoError(t, fleet.Ping(t.Context(), netip.MustParseAddr("127.0.0.1"), 1500*time.Millisecond))
	args, err := os.ReadFile(filepath.Join(dir, "args"))
	require.NoError(t, err)
	assert.Equal(t, "-n -q -c 1 -W 2 127.0.0.1\n", string(args), "ping arguments (-W is the reply timeout in whole seconds)")
	require.ErrorIs(t, fleet.Ping(t.Context(), netip.MustParseAddr("10.9.9.9"), time.Second), fleet.ErrUnreachable)
	alive, err := (&fleet.Prober{Ping: true}).Alive(t.Context(), []netip.Addr{netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("127.0.0.1")})
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, alive)

	t.Setenv("PATH", t.TempDir())
	require.ErrorIs(t, fleet.Ping(t.Context(), netip.MustParseAddr("127.0.0.1"), time.Second), fleet.ErrMissingProgram)
}
