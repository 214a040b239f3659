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

// writeKey writes key (an ed25519 or ECDSA private key) to path in
// OpenSSH format, encrypted when passphrase is set, and returns its signer.
func writeKey(t testing.TB, path string, key any, passphrase string) ssh.Signer {
	t.Helper()
	var blk *pem.Block
	var err error
	if passphrase == "" {
		blk, err = ssh.MarshalPrivateKey(key, "")
	} else {
		blk, err = ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	}
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(blk), 0o600))
	sg, err := ssh.NewSignerFromKey(key)
	require.NoError(t, err)
	return sg
}

// ecdsaKeyOf writes a new ECDSA P-256 private key in OpenSSH format to dir/name.
func ecdsaKeyOf(t testing.TB, dir, name string) ssh.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return writeKey(t, filepath.Join(dir, name), k, "")
}
