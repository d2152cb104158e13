// Package bench is `kitenats bench`: it starts a broker in this process
// (daemon.Start), drives it with real clients over NATS (nats.go) or over
// the KiteQ TCP adapter (kiteq-client-go's workload, framed with
// compat/wire), and measures throughput, latency and CPU per message; with
// --compare it runs the same workload, in the same run, against an embedded
// JetStream and raw core NATS and prints the ratios.
package bench
