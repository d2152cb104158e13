// Package daemon is the wired broker: it builds every component from a
// config.Config and runs them.
//
// New opens, under its context, what the configuration names: the store,
// the embedded NATS server (bridge) and the broker's two connections to it,
// the registry and the served topics' bindings in it, the group-commit
// writer, the transaction coordinator (txn), the broker (semantics), the
// KiteQ listener (compat) and the admin HTTP (admin). It starts no
// goroutine; if its context ends first (Ctrl-C while ZooKeeper or MySQL
// does not answer) it releases what it opened and says what it waited for.
//
// Run starts the components in order and, when its context ends or a
// component stops by itself, stops them in the reverse order, each waited
// for (lifecycle.go; Run's comment gives the order and why). Then it
// closes what New opened. Close does that alone, for a daemon never run.
//
// One file per adapter between packages: nats.go (the broker's NATS
// transport and the auth hook), kiteq.go (compat.Broker over semantics),
// txcheck.go (the transaction check-back: NATS producers, then KiteQ
// connections), registry.go (opening a registry, the advertised address),
// store.go (opening a store from its URI), admin.go and metrics.go (what
// the admin HTTP reads). The broker's rules live in the packages that own
// them, not here.
//
// The accessors (ClientURL, KiteQAddr, AdminAddr, BrokerID, Stat, Bind)
// are what tools need; Start runs a daemon in the background for them and
// for tests.
package daemon
