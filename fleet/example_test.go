package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// Fan out over two in-process SSH servers, one of which has a key that
// known_hosts does not know.
func ExampleGroup_Run() {
	ctx := context.Background()
	userKey, _ := fleettest.NewSigner()
	hello := func(ctx context.Context, s *fleettest.Session) int {
		fmt.Fprintf(s.Stdout, "hello from %q\n", s.Command)
		return 0
	}
	known, _ := fleettest.New(fleettest.Config{AuthorizedKeys: []ssh.PublicKey{userKey.PublicKey()}, Handler: hello})
	defer known.Close()
	stranger, _ := fleettest.New(fleettest.Config{AuthorizedKeys: []ssh.PublicKey{userKey.PublicKey()}, Handler: hello})
	defer stranger.Close()

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(known.KnownHostsLine()), 0o600)

	ex, err := fleet.NewSSH(fleet.SSHConfig{
		User:            "ops",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(userKey)},
		KnownHostsFiles: []string{kh},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ex.Close()
	g := fleet.Group{Executor: ex, Concurrency: 10}
	sum, err := g.Run(ctx, []string{known.Addr(), stranger.Addr()}, fleet.Command{Args: []string{"uname", "-a"}})
	fmt.Print(string(sum.Results[0].Stdout))
	fmt.Println("second host refused:", errors.Is(sum.Errors[1], fleet.ErrHostKeyUnknown))
	fmt.Println("joined error matches too:", errors.Is(err, fleet.ErrHostKeyUnknown))
	// Output:
	// hello from "uname -a"
	// second host refused: true
	// joined error matches too: true
}

// Run a program locally, without a shell.
func ExampleLocal_Run() {
	var l fleet.Local
	res, err := l.Run(context.Background(), fleet.Command{Args: []string{"echo", "$HOME is not expanded"}})
	fmt.Print(string(res.Stdout), err, "\n")
	_, err = l.Run(context.Background(), fleet.Command{Shell: "exit 3"})
	var ee *fleet.ExitError
	fmt.Println(errors.As(err, &ee), ee.Code)
	// Output:
	// $HOME is not expanded
	// <nil>
	// true 3
}

// Unit-test code that runs commands with a recording executor.
func ExampleRecorder() {
	rec := fleettest.NewRecorder(func(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
		return fleet.Result{Stdout: []byte("6.1.0\n")}, nil
	})
	g := fleet.Group{Executor: rec}
	sum, _ := g.Run(context.Background(), []string{"a", "b"}, fleet.Command{Args: []string{"uname", "-r"}})
	fmt.Println(len(sum.Succeeded), strings.TrimSpace(string(sum.Results[1].Stdout)), rec.Commands()[0].String())
	// Output:
	// 2 6.1.0 uname -r
}

func ExampleExpandCIDR() {
	for _, p := range []string{"192.0.2.0/30", "192.0.2.8/31", "2001:db8::/64"} {
		addrs, err := fleet.ExpandCIDR(p, 1024)
		fmt.Println(p, addrs, err)
	}
	// Output:
	// 192.0.2.0/30 [192.0.2.1 192.0.2.2] <nil>
	// 192.0.2.8/31 [192.0.2.8 192.0.2.9] <nil>
	// 2001:db8::/64 [] fleet: prefix holds too many addresses: 2001:db8::/64 has 2^64 addresses, limit 1024
}
