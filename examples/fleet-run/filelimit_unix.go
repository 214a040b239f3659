//go:build unix

package main

import "syscall"

// fdReserve is the descriptors kept for everything but the hosts' sockets:
// stdio, the runtime's poller, key, known_hosts, hosts and -outdir files.
const fdReserve = 32

// fitFileLimit returns how many hosts may be in flight at once: want, or
// fewer when one socket per host would not fit under the open-file limit
// (the soft RLIMIT_NOFILE, which Go raised to the hard limit at start).
// lim is that limit, 0 when unknown or unlimited.
func fitFileLimit(want int) (n int, lim uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<31 {
		return want, 0
	}
	if uint64(want)+fdReserve <= rl.Cur {
		return want, rl.Cur
	}
	return max(1, int(rl.Cur)-fdReserve), rl.Cur
}
