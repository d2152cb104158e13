package admin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeSource struct{ err, sick error }

func (f fakeSource) Stat(context.Context) (any, error) {
	return map[string]int{"published": 3}, f.err
}
func (fakeSource) Bindings() any   { return map[string][]string{"s-trade": {"trade/pay"}} }
func (f fakeSource) Health() error { return f.sick }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	for _, tt := range []struct {
		src        fakeSource
		statCode   int
		statSubstr string
		healthCode int
		healthBody string
	}{
		{fakeSource{}, 200, `"published": 3`, 200, "ok\n"},
		{fakeSource{err: errors.New("store down")}, 503, "store down", 200, "ok\n"},
		{fakeSource{sick: errors.New("publisher: connection lost")}, 200, `"published": 3`, 503, "publisher: connection lost\n"},
	} {
		s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, tt.src)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		base := "http://" + s.Addr().String()
		code, body := get(t, base+"/healthz")
		require.Equal(t, tt.healthCode, code)
		require.Equal(t, tt.healthBody, body)
		code, body = get(t, base+"/stat")
		require.Equal(t, tt.statCode, code)
		require.Contains(t, body, tt.statSubstr)
		code, body = get(t, base+"/binds")
		require.Equal(t, 200, code)
		require.Contains(t, body, "trade/pay")
		cancel()
		require.NoError(t, <-done)
	}
}
