// Package file is a static registry.Registry read from KiteQ's file
// registry YAML (kiteq-protocol.md §7.3), for development and tests.
//
// # Basics
//
// The file lists brokers (address, topics, env) and bindings (groupIds,
// topic, messageType, bindType, watermark, persistent):
//
//	brokers:
//	  - address: "localhost:13800"
//	    topics: ["relation", "message", "user-profile"]
//	    env: "dev"
//	bindings:
//	  - groupIds: ["s-user-profile"]
//	    topic: "user-profile"
//	    messageType: "profile-update"
//	    bindType: "direct"   # direct | regx | fanout, any case
//	    watermark: 1000
//	    persistent: true
//
// New reads it, then it is read again every ReloadInterval (60 s, like
// KiteQ). Watch sends the file's bindings of a topic (each groupId of an
// entry gets the binding), at once and after a reload that changes them.
// Brokers(topic) lists the brokers serving a topic. PublishBindings
// returns registry.ErrStatic; PublishServer and UnpublishServer only check
// that the address is one of the file's brokers. ParseURI reads KiteQ's
// file://PATH form.
//
// # Differences from KiteQ
//
//   - Topic lookup is exact membership: KiteQ binary-searches each
//     broker's topic list, so its own unsorted demo list finds only
//     "user-profile" (§12 item 12). Here every listed topic is found.
//   - A read or parse error on reload is logged and the previous state is
//     kept; KiteQ panics. At New it is returned as an error.
//   - A broker listed twice, a binding without groupIds, or a binding that
//     fails registry.Binding.Validate (watermark aside: KiteQ's <= 0 means
//     its default) makes the file invalid. An unknown bindType is read as
//     direct, like KiteQ, with a warning.
//   - Bindings are normalized: version "1.0.0", fanout messageType "*".
//
// # Caveats
//
// Replace the file atomically (write a temporary file, then rename it): a
// reload that reads a half-written file may see a valid but truncated
// registry, an empty one for instance, and applies it.
//
// # Concurrency
//
// A Registry is safe for concurrent use. It owns one reload goroutine;
// Close stops it, waits for it and closes every Watch channel. A Watch
// channel holds one event and a newer state replaces an unread one; it is
// closed by context.AfterFunc when its ctx ends. One mutex guards the
// parsed state and the watches; it is never held across file I/O.
package file
