// Command bench-fleet-bare is the reference client for make bench-fleet: the
// barest fan-out a Go programmer could write with golang.org/x/crypto/ssh
// (errgroup with a limit, dial, one session, run, close), with no pooling,
// no deadlines and no result handling. bench-fleet times it beside opskit's
// fleet-run and parallel-ssh against the same sshd, to show how close each
// client gets to the floor the server sets.
//
// Usage: bench-fleet-bare -hosts FILE -user U -key F -known-hosts F -concurrency N -- CMD
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"
)

func main() {
	hostsFile := flag.String("hosts", "", "file with one host:port per line")
	user := flag.String("user", "", "remote user")
	keyFile := flag.String("key", "", "private key file")
	khFile := flag.String("known-hosts", "", "known_hosts file")
	conc := flag.Int("concurrency", 50, "connections at once")
	flag.Parse()
	if err := run(*hostsFile, *user, *keyFile, *khFile, *conc, strings.Join(flag.Args(), " ")); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet-bare:", err)
		os.Exit(1)
	}
}

func run(hostsFile, user, keyFile, khFile string, conc int, cmd string) error {
	f, err := os.Open(hostsFile)
	if err != nil {
		return err
	}
	defer f.Close()
	var hosts []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if h := strings.TrimSpace(sc.Text()); h != "" {
			hosts = append(hosts, h)
		}
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	hkcb, err := knownhosts.New(khFile)
	if err != nil {
		return err
	}
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hkcb,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	}
	var ok atomic.Int64
	g, _ := errgroup.WithContext(context.Background())
	g.SetLimit(conc)
	for _, h := range hosts {
		g.Go(func() error {
			c, err := ssh.Dial("tcp", h, cfg)
			if err != nil {
				return nil // counted as not ok
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				return nil
			}
			defer s.Close()
			if _, err := s.Output(cmd); err == nil {
				ok.Add(1)
			}
			return nil
		})
	}
	g.Wait()
	fmt.Printf("%d/%d ok\n", ok.Load(), len(hosts))
	return nil
}
