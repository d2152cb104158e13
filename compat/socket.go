package compat

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// minSegment is the smallest MaxSegment accepted: IPv4's minimum MSS.
const minSegment = 536

// listen opens the TCP listener. mss > 0 sets TCP_MAXSEG on the listening
// socket before it listens: Linux copies it to every accepted connection
// and announces it in the SYN-ACK, so both directions use segments of at
// most mss bytes.
//
// Why: a KiteQ client asks for a 16 KiB receive buffer, so the window it
// opens stays near 16-30 KiB. On loopback the sender's MSS is half the
// largest window it has seen (about 32 KiB), and Linux sends the head of
// its queue only when a whole MSS fits in the window (tcp_snd_wnd_test);
// once more than an MSS is queued it waits for the zero-window probe timer
// instead, 200 ms and more per probe. The broker then trickles deliveries
// at a few dozen a second while both ends are idle. An MSS well under the
// client's window removes that state; on a real network (MSS 1448) it
// changes nothing.
func listen(addr string, mss int) (net.Listener, error) {
	lc := net.ListenConfig{}
	if mss > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("compat: set TCP_MAXSEG %d: %w", mss, serr)
			}
			return nil
		}
	}
	return lc.Listen(context.Background(), "tcp", addr)
}
