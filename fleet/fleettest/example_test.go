package fleettest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// Serve exec requests with a Go handler and check what ran.
func ExampleNew() {
	srv, err := fleettest.New(fleettest.Config{
		Password: "pw",
		Handler: func(ctx context.Context, s *fleettest.Session) int {
			fmt.Fprintln(s.Stdout, "Linux fake 6.1.0")
			return 0
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(srv.KnownHostsLine()), 0o600)

	ex, _ := fleet.NewSSH(fleet.SSHConfig{
		User:            "ops",
		Password:        func(user, host string) (string, error) { return "pw", nil },
		KnownHostsFiles: []string{kh},
	})
	defer ex.Close()
	res, err := ex.Run(context.Background(), fleet.Command{Host: srv.Addr(), Args: []string{"uname", "-a"}})
	fmt.Print(string(res.Stdout))
	fmt.Println(err, srv.Commands()[0].Command)
	// Output:
	// Linux fake 6.1.0
	// <nil> uname -a
}

// Check your own Executor with the conformance test.
func ExampleTestExecutor() {
	// In a _test.go file:
	//
	//	func TestMyExecutor(t *testing.T) {
	//		fleettest.TestExecutor(t, func(t *testing.T) (fleet.Executor, string) {
	//			return newMyExecutor(t), "host1"
	//		})
	//	}
}
