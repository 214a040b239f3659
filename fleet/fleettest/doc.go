// Package fleettest has fakes for code that uses package fleet: an
// in-process SSH server speaking the real protocol on 127.0.0.1
// (golang.org/x/crypto/ssh server side) and a recording fleet.Executor.
//
//	srv := fleettest.NewServer(t, fleettest.Config{Password: "pw"})
//	// write srv.KnownHostsLine() to a known_hosts file, then
//	ex, _ := fleet.NewSSH(fleet.SSHConfig{User: "u", KnownHostsFiles: []string{kh},
//		Password: func(user, host string) (string, error) { return "pw", nil }})
//	res, err := ex.Run(ctx, fleet.Command{Host: srv.Addr(), Args: []string{"echo", "hi"}})
//	// srv.Commands() lists what ran.
//
// The server authenticates by password, keyboard-interactive, public key
// and user certificate; serves exec and shell requests (after an optional
// pty-req) with a Handler, by default RunReal, which runs the command with
// /bin/sh as the test process's user (on a real pseudo-terminal after a
// pty-req); sends exit-status; optionally serves
// direct-tcpip (jump hosts) and direct-streamlocal@openssh.com (unix
// sockets reached with ssh.Client.Dial("unix", path)); and injects
// failures (refused auth, a connection dropped mid-command, a stalled
// handshake, unanswered keepalives). New starts one anywhere (the caller must Close it);
// NewServer starts one for a test and closes it with tb.Cleanup.
//
// TestExecutor checks that a fleet.Executor behaves as documented.
//
// Config.Password has the SDK's one secret type, opskit.Secret. Migration:
// it used to have a type from an internal package; a constant still works
// (Password: "pw"), and a string variable converts with opskit.Secret(pw).
//
// # Testing
//
// This package is itself the test package of fleet; its own behaviour is
// checked by fleet's tests and against OpenSSH in fleet's integration
// tests.
package fleettest
