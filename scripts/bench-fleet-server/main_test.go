package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func writeKey(t *testing.T, dir, name string) ssh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sg, _ := ssh.NewSignerFromKey(priv)
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), ssh.MarshalAuthorizedKey(sg.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return sg
}

// TestServer: three addresses of 127.1.0.0/16 serve SSH with the host key
// of the written known_hosts, run uname -a for real for the authorized key
// only, refuse other commands with 127, and delay their writes.
func TestServer(t *testing.T) {
	dir := t.TempDir()
	writeKey(t, dir, "host")
	user := writeKey(t, dir, "user")
	stranger := writeKey(t, dir, "stranger")
	s := &server{delay: time.Millisecond, cmd: "uname -a"}
	var err error
	if s.cfg, s.hostPub, err = serverConfig(filepath.Join(dir, "host"), filepath.Join(dir, "user.pub"), ""); err != nil {
		t.Fatal(err)
	}
	lns, err := listen(3, 0)
	for _, ln := range lns {
		defer ln.Close()
		go s.serve(ln)
	}
	if err != nil {
		t.Fatal(err)
	}
	port := lns[0].Addr().(*net.TCPAddr).Port
	hostsFile, khFile := filepath.Join(dir, "hosts"), filepath.Join(dir, "known_hosts")
	if err := s.writeLists(3, port, hostsFile, khFile); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(hostsFile)
	hosts := strings.Fields(string(b))
	if len(hosts) != 3 || hosts[2] != fmt.Sprintf("127.1.0.2:%d", port) {
		t.Fatalf("hosts file: %q", hosts)
	}
	hk, err := knownhosts.New(khFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command("uname", "-a").Output()
	if err != nil {
		t.Fatal(err)
	}
	dial := func(host string, sg ssh.Signer) (*ssh.Client, error) {
		return ssh.Dial("tcp", host, &ssh.ClientConfig{User: "ops", Auth: []ssh.AuthMethod{ssh.PublicKeys(sg)}, HostKeyCallback: hk, Timeout: 10 * time.Second})
	}
	for _, h := range hosts {
		c, err := dial(h, user)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		sess, _ := c.NewSession()
		got, err := sess.Output("uname -a")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: uname -a = %q, %v; want %q", h, got, err, want)
		}
		sess, _ = c.NewSession()
		var ee *ssh.ExitError
		if err := sess.Run("id"); !errors.As(err, &ee) || ee.ExitStatus() != 127 {
			t.Errorf("%s: id: %v, want exit status 127", h, err)
		}
		c.Close()
	}
	if _, err := dial(hosts[0], stranger); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("another key: %v, want refused", err)
	}
	if s.execs.Load() != 6 || s.writes.Load() < 6*int64(len(hosts)) {
		t.Errorf("%d exec requests, %d delayed writes", s.execs.Load(), s.writes.Load())
	}
}
