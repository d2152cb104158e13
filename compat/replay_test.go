package compat_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
)

// capturedFrame is one line of compat/wire's copy of the capture between
// the original broker and the original Go client.
type capturedFrame struct {
	Index    int    `json:"index"`
	Conn     int    `json:"conn"`
	Dir      string `json:"dir"`
	Cmd      uint8  `json:"cmd"`
	FrameHex string `json:"frame_hex"`
}

// TestCompatReplayCapturedSession plays the original client's side of a
// real session, byte for byte, and requires every reply the original broker
// sent (handshake, store acks, heartbeats) to come back byte-identical. The
// broker-initiated frames of the capture (deliveries) are not replayed: the
// client's DeliverAcks for them carry opaques this server never issued and
// are ignored, and its TxAck gets no reply, as in the capture.
func TestCompatReplayCapturedSession(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("wire", "testdata", "kiteq", "frames.jsonl"))
	require.NoError(t, err)
	var frames []capturedFrame
	for line := range bytes.Lines(data) {
		var f capturedFrame
		require.NoError(t, json.Unmarshal(line, &f))
		frames = append(frames, f)
	}
	require.NotEmpty(t, frames)

	b := newFakeBroker()
	// The original reported "Store Result true Cost:0": a fixed clock makes
	// ours cost 0 too.
	addr := startServer(t, b, func(c *compat.Config) { c.Now = func() time.Time { return clock } })
	conns := map[int]*compattest.Client{}
	replies := 0
	for _, f := range frames {
		raw, err := hex.DecodeString(f.FrameHex)
		require.NoError(t, err)
		c := conns[f.Conn]
		if c == nil {
			c = compattest.Dial(t, addr)
			conns[f.Conn] = c
		}
		if f.Dir == "client->broker" {
			require.NoError(t, c.WriteRaw(raw), "frame %d", f.Index)
			continue
		}
		switch wire.Cmd(f.Cmd) {
		case wire.CmdBytesMessage, wire.CmdStringMessage:
			continue // a delivery: the fake broker delivers nothing
		}
		got, err := c.TryRead()
		require.NoError(t, err, "frame %d", f.Index)
		require.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(wire.AppendFrame(nil, got)), "frame %d", f.Index)
		replies++
	}
	require.Equal(t, 7, replies) // 2 handshakes, 3 store acks, 2 heartbeats
	require.Len(t, b.publishes, 3)
	for _, c := range conns {
		c.Heartbeat(1) // still open: nothing in the capture was fatal
	}
	none(t, b.acks)
}
