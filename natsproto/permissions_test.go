package natsproto

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPermissionsTemplate pins the subjects of NATS-PROTOCOL.md §7: a
// group's user acks and calls the API as its own (escaped) group only.
func TestPermissionsTemplate(t *testing.T) {
	require.Equal(t, Permissions{
		Publish:        []string{"kq.>", "$KQ.API.*.s-trade", "$KQ.API.*.*.s-trade", "$KQ.ACK.s-trade.>"},
		Subscribe:      []string{"_INBOX.>", "$KQ.DLV.s-trade.>", "$KQ.TXCHECK.s-trade"},
		AllowResponses: true,
	}, GroupPermissions("s-trade"))
	require.Equal(t, Permissions{
		Publish:        []string{"kq.>", "$KQ.API.*.s%2Etrade%20x", "$KQ.API.*.*.s%2Etrade%20x", "$KQ.ACK.s%2Etrade%20x.>"},
		Subscribe:      []string{"_INBOX.>", "$KQ.DLV.s%2Etrade%20x.>", "$KQ.TXCHECK.s%2Etrade%20x"},
		AllowResponses: true,
	}, GroupPermissions("s.trade x"), "the group is one escaped token: a dot in its name cannot widen the grant")
	require.Equal(t, Permissions{
		Publish:        []string{"$KQ.API.>", "kq.>"},
		Subscribe:      []string{"$KQ.TAP.>", "kq.>", "_INBOX.>"},
		AllowResponses: true,
	}, AdminPermissions())
}
