//go:build race

package racelog_test

// raceEnabled: under -race the flood tests use smaller streams.
const raceEnabled = true
