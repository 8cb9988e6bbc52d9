// Package e2e holds end-to-end tests: they build the three binaries, run
// ecsemu and replicatord as real processes on loopback and a unix socket,
// drive them with replctl, and check the emulated cloud through the SDK
// adapter. Nothing in them is faked.
package e2e
