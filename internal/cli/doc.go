// Package cli holds the kitenats subcommands other than bench: serve (the
// daemon until a signal), pub, sub, stat, dlq, tx and adopt, and Dispatch,
// which picks one from main's command table and prints `kitenats help`. They use only
// exported APIs: the daemon and config packages to serve, NATS and the
// $KQ.API calls of docs/NATS-PROTOCOL.md (through nats.go and the client
// package) to talk to a running broker, and store/mysql to adopt a dead
// broker's messages.
package cli
