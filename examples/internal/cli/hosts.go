package cli

import (
	"os"

	"github.com/opskit/opskit/fleet"
)

// ReadHosts reads the hosts file at path, one host per line, as
// fleet.ParseHosts reads it. A file with no hosts gives an empty list and no
// error; programs that need at least one host say so themselves.
func ReadHosts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return fleet.ParseHosts(f)
}
