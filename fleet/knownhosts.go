package fleet

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHosts verifies host keys against known_hosts files and, with
// accept-new, appends unknown hosts to the first file under a lock.
type knownHosts struct {
	files []string
	probe ssh.PublicKey // a key no host has, to list a host's known keys

	mu sync.RWMutex
	cb ssh.HostKeyCallback
}

func newKnownHosts(files []string) (*knownHosts, error) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	k := &knownHosts{files: files, probe: probe}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// reload re-reads the files; missing files count as empty.
func (k *knownHosts) reload() error {
	var existing []string
	for _, f := range k.files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fleet: known_hosts: %w", err)
		}
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return fmt.Errorf("fleet: known_hosts: %v", err)
	}
	k.mu.Lock()
	k.cb = cb
	k.mu.Unlock()
	return nil
}

func (k *knownHosts) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	k.mu.RLock()
	cb := k.cb
	k.mu.RUnlock()
	return cb(hostname, remote, key)
}

// knownKeyTypes lists the key types known_hosts holds for the host.
func (k *knownHosts) knownKeyTypes(hostname string, remote net.Addr) []string {
	var ke *knownhosts.KeyError
	if err := k.check(hostname, remote, k.probe); !errors.As(err, &ke) {
		return nil
	}
	var types []string
	for _, w := range ke.Want {
		types = append(types, w.Key.Type())
	}
	return types
}

// add appends hostname's key to the first file, holding an flock on it
// so that concurrent programs don't interleave lines, unless another
// writer recorded a key for the host meanwhile.
func (k *knownHosts) add(hostname string, remote net.Addr, key ssh.PublicKey) error {
	path := k.files[0]
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := k.reload(); err != nil {
		return err
	}
	var ke *knownhosts.KeyError
	err = k.check(hostname, remote, key)
	switch {
	case err == nil:
		return nil // someone else added it
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return err // someone else added a different key: changed
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return k.reload()
}

// checkHostKey is the HostKeyCallback of every hop.
func (s *SSH) checkHostKey(hop target, hostname string, remote net.Addr, key ssh.PublicKey) error {
	if s.cfg.InsecureIgnoreHostKey {
		return nil
	}
	if s.cfg.HostKeyCallback != nil {
		if err := s.cfg.HostKeyCallback(hostname, remote, key); err != nil {
			return &HostError{Host: hostname, Kind: ErrHostKeyUnknown, Err: err}
		}
		return nil
	}
	known := s.known
	if hop.known != nil {
		known = hop.known
	}
	err := known.check(hostname, remote, key)
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) && len(ke.Want) == 0 && (s.cfg.AcceptNewHostKeys || hop.acceptNew) {
		err = known.add(hostname, remote, key)
		if err == nil {
			s.log.Info("ssh host key recorded", "host", hostname, "type", key.Type(), "fingerprint", ssh.FingerprintSHA256(key), "file", known.files[0])
			return nil
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		s.log.Warn("ssh host key changed", "host", hostname, "fingerprint", ssh.FingerprintSHA256(key), "known", fmt.Sprintf("%s:%d", ke.Want[0].Filename, ke.Want[0].Line))
		return &HostError{Host: hostname, Kind: ErrHostKeyChanged, Err: fmt.Errorf("got %s %s, known_hosts has %s at %s:%d", key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Key.Type(), ke.Want[0].Filename, ke.Want[0].Line)}
	case errors.As(err, &ke):
		return &HostError{Host: hostname, Kind: ErrHostKeyUnknown, Err: fmt.Errorf("%s %s is not in known_hosts", key.Type(), ssh.FingerprintSHA256(key))}
	}
	return &HostError{Host: hostname, Kind: ErrHostKeyUnknown, Err: err}
}

// hostKeyAlgorithms derives the algorithms to ask for from the key types
// known_hosts holds for the host; nil (Go's default order) when it has
// none or verification is off.
func (s *SSH) hostKeyAlgorithms(hop target, hostname string, remote net.Addr) []string {
	known := s.known
	if hop.known != nil {
		known = hop.known
	}
	if known == nil {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, t := range known.knownKeyTypes(hostname, remote) {
		for _, a := range algorithmsFor(t) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	}
	return []string{keyType}
}
