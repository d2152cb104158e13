// Package registrytest holds the conformance suite of the registry.Registry
// contract and Fake, an in-memory Registry for other packages' tests.
//
// # Basics
//
// Run(t, factory) checks a backend: a Watch sends the full state at once;
// PublishBindings of a group shows up in every Watch of its topics;
// publishing again replaces, an empty list deletes; two groups are kept
// apart and deleting one never hides the other; a group moved to another
// topic leaves the first; Close and the end of a Watch's ctx close its
// channel; PublishServer refuses an address without a routable host. A
// static registry (PublishBindings returns registry.ErrStatic) runs the
// parts that do not publish bindings. Each subtest uses topics of its own
// (UniqueTopic), so a backend on a shared server needs no cleanup.
//
// Fake implements the contract in memory with the same validation as
// registry/zk. Tests can inject bindings as a KiteQ client would write
// them (SetBindings), read what was advertised (Servers) and simulate a
// lost session (LoseSession, RestoreSession).
//
// # Concurrency
//
// Fake is safe for concurrent use and starts no goroutine of its own; a
// Watch's channel is closed by context.AfterFunc when its ctx ends, or by
// Close. Like registry/zk, a Watch channel holds at most an unread Err and
// the newest full state: a newer state replaces an unread one.
package registrytest
