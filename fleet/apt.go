package fleet

import (
	"context"
	"errors"
	"regexp"
)

// AptOutcome is what an apt-get install dialogue did.
type AptOutcome struct {
	// Installed lists packages set up ("Setting up PKG ...").
	Installed []string
	// AlreadyNewest lists packages apt-get reported as "is already the
	// newest version".
	AlreadyNewest []string
	// Answered reports that the "Do you want to continue? [Y/n]" prompt
	// was answered with Y.
	Answered bool
	// Result is the exit status and transcript.
	Result Result
}

var (
	aptContinue = regexp.MustCompile(`Do you want to continue\? \[Y/n\]`)
	aptNewest   = regexp.MustCompile(`(\S+) is already the newest version[^\n]*\n`)
	aptSetup    = regexp.MustCompile(`Setting up (\S+) [^\n]*\n`)
	aptError    = regexp.MustCompile(`(?m)^E: [^\r\n]*`)
)

// AptGetInstall drives the dialogue of "apt-get install PKG..." (without
// -y) on sp, run as cmd: it answers "Do you want to continue? [Y/n]" with
// Y, copes with packages that are "already the newest version", and
// returns when apt-get exits. A non-zero exit is a *ExitError.
//
//	out, err := fleet.AptGetInstall(ctx, sshExec, fleet.Command{Host: h, Args: []string{"apt-get", "install", "nginx"}})
func AptGetInstall(ctx context.Context, sp Spawner, cmd Command) (AptOutcome, error) {
	var o AptOutcome
	e, err := sp.Spawn(ctx, cmd)
	if err != nil {
		return o, err
	}
	defer e.Close()
	for {
		i, _, m, err := e.Switch(ctx,
			Case{Match: aptContinue, Send: "Y\n"},
			Case{Match: aptNewest},
			Case{Match: aptSetup},
			Case{Match: aptError},
		)
		if errors.Is(err, ErrExpectEnded) {
			break
		}
		if err != nil {
			return o, err
		}
		switch i {
		case 0:
			o.Answered = true
		case 1:
			o.AlreadyNewest = append(o.AlreadyNewest, m[1])
		case 2:
			o.Installed = append(o.Installed, m[1])
		}
	}
	o.Result, err = e.Wait(ctx)
	return o, err
}
