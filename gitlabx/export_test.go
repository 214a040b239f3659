package gitlabx

import "time"

// NewMemoryIntake returns the in-memory intake NewHooks builds with its
// defaults, for the intaketest conformance test.
func NewMemoryIntake() Intake {
	return newMemoryIntake(&HooksConfig{Workers: 8, QueueSize: 1000, MaxQueuedBytes: 64 << 20,
		DedupTTL: time.Hour, DedupSize: 10000, Now: time.Now})
}
