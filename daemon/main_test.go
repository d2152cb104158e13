package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks, after every test of the package has run, that no
// goroutine is left: each daemon the tests started stopped everything it
// started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
