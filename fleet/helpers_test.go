package fleet_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func ecdsaSigner(t testing.TB) ssh.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	sg, err := ssh.NewSignerFromKey(k)
	require.NoError(t, err)
	return sg
}

// startAgent serves an in-memory ssh-agent holding a key on a
// unix socket and returns the socket path.
// It loads the key from keyFile.
func startAgent(t testing.TB, keyFile string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	kr := agent.NewKeyring()
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	raw, err := ssh.ParseRawPrivateKey(b)
	require.NoError(t, err)
	require.NoError(t, kr.Add(agent.AddedKey{PrivateKey: raw}))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(kr, c); c.Close() }()
		}
	}()
	return sock
}

func splitHostPort(a string) (string, string, error) { return net.SplitHostPort(a) }

// ecdsaKeyOf writes a new ECDSA P-256 private key in OpenSSH format to dir/name.
func ecdsaKeyOf(t testing.TB, dir, name string) ssh.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	blk, err := ssh.MarshalPrivateKey(k, "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600))
	sg, err := ssh.NewSignerFromKey(k)
	require.NoError(t, err)
	return sg
}
