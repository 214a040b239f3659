package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/opskit/opskit/fleet"
	"github.com/opskit/opskit/fleet/fleettest"
)

// fleetChapter is the tour's fleet chapter.
func fleetChapter() chapter {
	return chapter{
		name:    "fleet",
		summary: "fan out over SSH servers, refusing a changed host key",
		run:     runFleetChapter,
	}
}

// tourHost is a pretend machine: an in-process SSH server that answers
// uname and talks like apt-get.
func tourHost(name string, userKey ssh.PublicKey) (*fleettest.Server, error) {
	return fleettest.New(fleettest.Config{
		AuthorizedKeys: []ssh.PublicKey{userKey},
		Handler: func(ctx context.Context, s *fleettest.Session) int {
			switch {
			case s.Command == "uname -sn":
				fmt.Fprintf(s.Stdout, "Linux %s\n", name)
				return 0
			case strings.HasPrefix(s.Command, "apt-get install"):
				fmt.Fprint(s.Stdout, "Reading package lists... Done\nThe following NEW packages will be installed:\n  nginx\nDo you want to continue? [Y/n] ")
				answer, _ := bufio.NewReader(s.Stdin).ReadString('\n')
				if strings.TrimSpace(answer) != "Y" {
					fmt.Fprintln(s.Stdout, "Abort.")
					return 1
				}
				fmt.Fprint(s.Stdout, "Unpacking nginx (1.22.1-9) ...\nSetting up nginx (1.22.1-9) ...\n")
				return 0
			}
			fmt.Fprintf(s.Stderr, "%s: command not found\n", s.Command)
			return 127
		},
	})
}

func runFleetChapter(ctx context.Context, n *narrator) error {
	dir, err := os.MkdirTemp("", "opskit-tour-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	userKey, err := fleettest.NewSigner()
	if err != nil {
		return err
	}

	names := []string{"web1", "web2", "web3"}
	addrs := make([]string, len(names))
	nameOf := map[string]string{}
	servers := make([]*fleettest.Server, len(names))
	var known strings.Builder
	for i, name := range names {
		srv, err := tourHost(name, userKey.PublicKey())
		if err != nil {
			return err
		}
		defer srv.Close()
		servers[i], addrs[i], nameOf[srv.Addr()] = srv, srv.Addr(), name
		key := srv.HostKey()
		if name == "web3" {
			// known_hosts remembers the key web3 had before it was
			// reinstalled (or before someone got in between).
			old, err := fleettest.NewSigner()
			if err != nil {
				return err
			}
			key = old.PublicKey()
		}
		known.WriteString(knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, key) + "\n")
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(known.String()), 0o600); err != nil {
		return err
	}
	n.Say("Started three in-process SSH servers, web1 to web3; known_hosts has an old key for web3.")

	ex, err := fleet.NewSSH(fleet.SSHConfig{
		User:            "ops",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(userKey)},
		KnownHostsFiles: []string{kh},
	})
	if err != nil {
		return err
	}
	defer ex.Close()

	g := fleet.Group{Executor: ex, Concurrency: 2}
	sum, err := g.Run(ctx, addrs, fleet.Command{Args: []string{"uname", "-sn"}})
	n.Say("fleet.Group ran `uname -sn` on 3 hosts, at most 2 at a time:")
	for i, r := range sum.Results {
		if e := sum.Errors[i]; e != nil {
			if !errors.Is(e, fleet.ErrHostKeyChanged) {
				return fmt.Errorf("%s: want a host key changed error, got %w", names[i], e)
			}
			n.Say("  %s: refused: the host key changed (errors.Is(err, fleet.ErrHostKeyChanged))", nameOf[r.Host])
			continue
		}
		n.Say("  %s: exit %d: %s", nameOf[r.Host], r.ExitCode, strings.TrimSpace(string(r.Stdout)))
	}
	if err == nil || len(sum.Succeeded) != 2 {
		return fmt.Errorf("want 2 hosts to succeed and web3 to fail, got %d succeeded, err %v", len(sum.Succeeded), err)
	}
	if len(servers[2].Commands()) != 0 {
		return errors.New("web3 received a command despite its changed key")
	}
	n.Say("web3 never received the command. Summary: %d succeeded, %d failed.", len(sum.Succeeded), len(sum.Failed))

	if _, err := g.Run(ctx, addrs[:2], fleet.Command{Args: []string{"uname", "-sn"}}); err != nil {
		return err
	}
	n.Say("A second command reused the pooled connections: web1 accepted %d TCP connection(s).", servers[0].Accepted())

	out, err := fleet.AptGetInstall(ctx, ex, fleet.Command{Host: addrs[0], Args: []string{"apt-get", "install", "nginx"}})
	if err != nil {
		return err
	}
	n.Say("The expect executor talked to apt-get on web1: answered the prompt: %v, installed: %s.", out.Answered, strings.Join(out.Installed, ", "))
	return nil
}
