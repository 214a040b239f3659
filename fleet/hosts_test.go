package fleet_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet"
)

func TestParseHosts(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"plain", "web1\nweb2:2222\nops@db1\n", []string{"web1", "web2:2222", "ops@db1"}, ""},
		{"comments and blanks", "# fleet\n\n  web1   # primary\n\t\nweb2 extra words\n", []string{"web1", "web2"}, ""},
		{"ipv6", "[2001:db8::1]:22\n", []string{"[2001:db8::1]:22"}, ""},
		{"empty", "", nil, ""},
		{"option-looking", "-oProxyCommand=x\n", nil, "line 1"},
		{"shell metacharacters", "web1\nweb2;reboot\n", nil, "line 2"},
		{"user without host", "ops@\n", nil, "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fleet.ParseHosts(strings.NewReader(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{"web1\n", "# c\nops@db:22 x\n", "[::1]:22", "a;b", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, err := fleet.ParseHosts(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, " \t\n#;") {
				t.Fatalf("ParseHosts(%q) gave host %q", s, h)
			}
		}
	})
}
