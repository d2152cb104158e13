// Package config is the daemon's configuration: the defaults of the
// standalone broker, KiteQ's cluster.toml ([registry.<env>] and
// [clusters.<name>] sections, with our own keys beside KiteQ's), and the
// serve flags, KiteQ's command line (-clusterName -configPath -pport -bind
// -logPath) plus ours. Parse applies them in that order and validates the
// result: bad config is one error that names each bad key. It opens
// nothing; the daemon package does that with the Config it returns.
package config
