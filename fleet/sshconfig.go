package fleet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// DefaultConfigFiles returns the OpenSSH client config files ssh reads
// when not given -F: ~/.ssh/config, then /etc/ssh/ssh_config. Put them in
// SSHConfig.ConfigFiles to honour them; nothing is read unless asked.
func DefaultConfigFiles() []string {
	var files []string
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".ssh", "config"))
	}
	return append(files, "/etc/ssh/ssh_config")
}

// sshConfigs holds the parsed ConfigFiles, first file first: as in
// OpenSSH, the first value found for a keyword wins.
type sshConfigs []*ssh_config.Config

// loadSSHConfigs parses files; a file that does not exist is skipped.
func loadSSHConfigs(files []string) (sshConfigs, error) {
	var cs sshConfigs
	for _, f := range files {
		r, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: ssh_config: %w", err)
		}
		c, err := ssh_config.Decode(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("fleet: ssh_config %s: %v", f, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (cs sshConfigs) get(alias, key string) string {
	for _, c := range cs {
		if v, err := c.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

func (cs sshConfigs) getAll(alias, key string) []string {
	var all []string
	for _, c := range cs {
		if v, err := c.GetAll(alias, key); err == nil {
			all = append(all, v...)
		}
	}
	return all
}

// seconds parses a ConnectTimeout or ServerAliveInterval value.
func seconds(v string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// expandPath expands ~ and the tokens of ssh_config(5) that make sense
// for a file name: %d (home), %u (local user), %h (host name), %n (the
// name as given), %p (port), %r (remote user) and %%.
func expandPath(p, alias, hostname, port, remoteUser string) string {
	home, _ := os.UserHomeDir()
	if p == "~" {
		p = home
	} else if rest, ok := strings.CutPrefix(p, "~/"); ok {
		p = filepath.Join(home, rest)
	}
	if !strings.Contains(p, "%") {
		return p
	}
	local := ""
	if u, err := user.Current(); err == nil {
		local = u.Username
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case 'd':
			b.WriteString(home)
		case 'u':
			b.WriteString(local)
		case 'h':
			b.WriteString(hostname)
		case 'n':
			b.WriteString(alias)
		case 'p':
			b.WriteString(port)
		case 'r':
			b.WriteString(remoteUser)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// resolve fills t from the config files for alias, below what the host
// string and explicit SSHConfig fields say: HostName, Port, User,
// IdentityFile, ProxyJump, StrictHostKeyChecking, UserKnownHostsFile,
// ConnectTimeout and ServerAliveInterval.
func (s *SSH) resolve(alias string, port string, userGiven bool, t *target, jumpDepth int) error {
	cs := s.conf
	host := alias
	if hn := cs.get(alias, "HostName"); hn != "" {
		host = strings.ReplaceAll(hn, "%h", alias)
	}
	if port == "" && s.given.Port == 0 {
		port = cs.get(alias, "Port")
	}
	if port == "" {
		port = strconv.Itoa(s.cfg.Port)
	}
	if !userGiven && s.cfg.User == "" {
		if u := cs.get(alias, "User"); u != "" {
			t.user = u
		}
	}
	t.addr = net.JoinHostPort(strings.Trim(host, "[]"), port)
	for _, f := range cs.getAll(alias, "IdentityFile") {
		t.keys = append(t.keys, expandPath(f, alias, host, port, t.user))
	}
	if !s.cfg.InsecureIgnoreHostKey && s.cfg.HostKeyCallback == nil && s.cfg.KnownHostsFiles == nil {
		var files []string
		for _, v := range cs.getAll(alias, "UserKnownHostsFile") {
			for _, f := range strings.Fields(v) {
				files = append(files, expandPath(f, alias, host, port, t.user))
			}
		}
		if len(files) > 0 {
			k, err := s.knownFor(files)
			if err != nil {
				return err
			}
			t.known = k
		}
	}
	if !s.cfg.AcceptNewHostKeys {
		switch strings.ToLower(cs.get(alias, "StrictHostKeyChecking")) {
		case "accept-new":
			t.acceptNew = true
		case "no", "off":
			// OpenSSH would also connect to a host whose key changed; a
			// changed key is still refused here.
			t.acceptNew = true
			s.log.Debug("ssh_config StrictHostKeyChecking no: recording new host keys, still refusing changed ones", "host", alias)
		}
	}
	if s.given.DialTimeout == 0 {
		if d, ok := seconds(cs.get(alias, "ConnectTimeout")); ok {
			t.dialTimeout = d
		}
	}
	if s.given.KeepAlive == 0 {
		if d, ok := seconds(cs.get(alias, "ServerAliveInterval")); ok {
			t.keepAlive = d
		}
	}
	if len(s.cfg.Jump) == 0 && jumpDepth == 0 {
		pj := cs.get(alias, "ProxyJump")
		if pj != "" && !strings.EqualFold(pj, "none") {
			for _, j := range strings.Split(pj, ",") {
				j = strings.TrimPrefix(strings.TrimSpace(j), "ssh://")
				jt, err := s.parseTarget(j, jumpDepth+1)
				if err != nil {
					return fmt.Errorf("fleet: ssh_config ProxyJump of %s: %w", alias, err)
				}
				t.jumps = append(t.jumps, jt)
			}
		}
	}
	return nil
}

// knownFor returns the known_hosts checker for files, one per set.
func (s *SSH) knownFor(files []string) (*knownHosts, error) {
	key := strings.Join(files, "\x00")
	s.confMu.Lock()
	defer s.confMu.Unlock()
	if k, ok := s.knownByFiles[key]; ok {
		return k, nil
	}
	k, err := newKnownHosts(files)
	if err != nil {
		return nil, err
	}
	if s.knownByFiles == nil {
		s.knownByFiles = map[string]*knownHosts{}
	}
	s.knownByFiles[key] = k
	return k, nil
}

// keysFor loads a hop's IdentityFile keys once each. A file that does not
// exist is skipped, as ssh skips it; one that cannot be used is logged
// and skipped.
func (s *SSH) keysFor(files []string) []ssh.Signer {
	var out []ssh.Signer
	s.confMu.Lock()
	defer s.confMu.Unlock()
	for _, f := range files {
		sg, ok := s.keyCache[f]
		if !ok {
			var err error
			sg, err = loadKey(f, s.cfg.Passphrase)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					s.log.Warn("ssh_config IdentityFile not usable", "file", f, "err", err)
				}
				sg = nil
			}
			if s.keyCache == nil {
				s.keyCache = map[string][]ssh.Signer{}
			}
			s.keyCache[f] = sg
		}
		out = append(out, sg...)
	}
	return out
}
