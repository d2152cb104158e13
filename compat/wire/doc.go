// Package wire is the KiteQ wire codec: the 19-byte frame header, the
// command codes, the proto2 message bodies and the Snappy body encoding,
// byte-compatible with the original broker and the unmodified
// kiteq-client-go (kiteq-protocol.md §1, §2).
//
// # Basics
//
// A frame is a fixed big-endian header (opaque u32, command u8, version i16,
// extension i64, body length i32; HeaderLen bytes, no leading total length)
// followed by the body. ReadFrame, AppendFrame and WriteFrame move Frame
// values on and off a stream. The body is the protobuf encoding of the
// message the command code selects: Decode turns a Frame into one of the
// generated types (*HeartBeat, *ConnMeta, *ConnAuthAck, *MessageStoreAck,
// *DeliverAck, *TxACKPacket, *BytesMessage, *StringMessage), and Encode does
// the reverse. DecodeBody and EncodeBody handle the application-level Snappy
// compression of a message body that Header.snappy flags.
//
// # What it owns, and what not
//
// It owns bytes and types only. It does not own connections, sessions,
// opaque allocation, timeouts, the handshake, or any broker rule (message-id
// format, expiry and deliverLimit clamping, authorisation): those belong to
// package compat. It imports no package of this module.
//
// # Invariants
//
//   - ReadFrame never allocates more than the declared body length, and
//     refuses (without allocating) any length that is negative
//     (ErrBadLength) or above MaxBodyLen (ErrFrameTooLarge). After either
//     error the stream is misaligned and the connection must be closed.
//   - Encode and Decode enforce proto2 required fields, exactly as the
//     original client does: every frame a broker sends must have all of
//     them present (an empty string or false counts as present).
//   - Encode writes fields in field-number order, so its output is
//     byte-identical to the original runtime's; the golden tests in
//     testdata/kiteq pin this.
//   - DecodeBody refuses a result longer than the caller's limit before
//     allocating it.
//
// # Concurrency
//
// Every function is pure apart from the reader or writer it is given, and is
// safe for concurrent use. A *bufio.Reader or io.Writer must not be shared
// between concurrent ReadFrame or WriteFrame calls without the caller's own
// locking.
//
// # Caveats
//
//   - Frame.Body returned by ReadFrame is a fresh slice owned by the caller;
//     messages returned by Decode do not alias it.
//   - Unknown command codes are not an error at the frame level: ReadFrame
//     returns them, and Decode reports ErrUnknownCmd, which callers ignore as
//     both original peers do.
//   - Getters of the generated types return the proto2 defaults for absent
//     fields (ConnAuthAck.status true, Header.expiredTime -1,
//     Header.deliverLimit 100); absent still fails Encode.
//
// # Regenerating kiteq.pb.go
//
// kiteq.pb.go is generated from kiteq.proto and committed, so building and
// CI need no protoc. To regenerate it after changing kiteq.proto, install
// protoc (Debian: apt-get install -y protobuf-compiler) and the pinned plugin
// (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12, the
// runtime version in go.mod), make sure $(go env GOPATH)/bin is on PATH, and
// run, from the module root:
//
//	go generate ./compat/wire/
//
// which runs the go:generate line below (protoc with the module root as
// proto path, so the registered file name is compat/wire/kiteq.proto).
// Then run the golden tests: they fail if the encoding changed.
package wire

//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=paths=source_relative compat/wire/kiteq.proto
