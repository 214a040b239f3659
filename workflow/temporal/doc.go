// Package temporal runs workflow rollouts on Temporal.
package temporal
