package fleet

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ParseHosts reads a hosts list: one "[user@]host[:port]" per line, where
// blank lines and text after '#' are ignored and only the first word of
// a line counts. Duplicates are kept. It returns an error for a line
// whose first word is not a plausible host; one that names no machine
// ("@", "user@", ":22") matches ErrInvalidHost.
func ParseHosts(r io.Reader) ([]string, error) {
	var hosts []string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		h := f[0]
		if err := CheckHost(h); err != nil {
			return nil, fmt.Errorf("fleet: hosts line %d: %w", n, err)
		}
		if strings.ContainsAny(h, "/\\'\"`$;|&<>(){}") || strings.HasPrefix(h, "-") || strings.HasSuffix(h, "@") {
			return nil, fmt.Errorf("fleet: hosts line %d: %q is not a host", n, h)
		}
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fleet: hosts: %w", err)
	}
	return hosts, nil
}
