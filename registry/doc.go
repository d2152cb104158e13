// Package registry owns KiteQ bindings and the contract of a registry.
//
// A Binding says that a consumer group wants the messages of a topic whose
// messageType matches (direct: equal; regx: an unanchored RE2 pattern; fanout:
// every type). This package holds KiteQ's exact matching rules, the conflict
// rules that BIND enforces, and KiteQ's JSON form of a binding
// (kiteq-common registry/kite_bind.go). The Registry interface is what the
// broker needs from ZooKeeper (registry/zk) or a static file (registry/file):
// advertise the broker for its topics, publish the bindings of NATS consumer
// groups, and watch the bindings KiteQ clients write.
//
// It imports nothing else of this module and decides nothing about delivery.
// Values are immutable once built; a Matcher is safe for concurrent use.
package registry
