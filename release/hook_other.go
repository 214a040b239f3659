//go:build !unix

package release

import "os/exec"

// setProcessGroup leaves cmd as it is: process groups are a Unix feature,
// so cancellation kills only the script itself.
func setProcessGroup(cmd *exec.Cmd) {}
