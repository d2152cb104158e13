package zk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRegistryZKParseURI(t *testing.T) {
	tests := []struct {
		uri     string
		want    []string
		wantErr bool
	}{
		{"zk://localhost:2181", []string{"localhost:2181"}, false},
		{"zk://h1:2181,h2:2182", []string{"h1:2181", "h2:2182"}, false},
		{"zk://h1:2181,h2:2182?timeout=3s&x=y", []string{"h1:2181", "h2:2182"}, false},
		{"ZK://h1", []string{"h1:2181"}, false},
		{"zk://", []string{DefaultServer}, false},
		{"zk://?a=b", []string{DefaultServer}, false},
		{"zk://,,", []string{DefaultServer}, false},
		{"zk://h1:2181,,h2:2181", []string{"h1:2181", "h2:2181"}, false},
		{"zk://h1:2181/", []string{"h1:2181"}, false},
		{"zk://[::1]:2181,[::1]", []string{"[::1]:2181", "[::1]:2181"}, false},
		{"zk://h1:2181/chroot", nil, true},
		{"zk://h1:99999", nil, true},
		{"zk://h1:abc", nil, true},
		{"zk://h1:2181?%zz", nil, true},
		{"file://./conf/registry.yaml", nil, true},
		{"etcd://http://h:2379", nil, true},
		{"localhost:2181", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseURI(tt.uri)
		if tt.wantErr {
			require.Error(t, err, tt.uri)
			require.Contains(t, err.Error(), "zk: ")
			continue
		}
		require.NoError(t, err, tt.uri)
		require.Equal(t, tt.want, got, tt.uri)
	}
}

func TestRegistryZKCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"localhost:13800":     true,
		"10.0.0.5:13800":      true,
		"broker-1.svc:13800":  true,
		"[2001:db8::1]:13800": true,
		":13800":              false,
		"0.0.0.0:13800":       false,
		"[::]:13800":          false,
		"13800":               false,
		"host":                false,
		"host:0":              false,
		"host:http":           false,
		"":                    false,
	} {
		err := CheckAddr(addr)
		if ok {
			require.NoError(t, err, addr)
		} else {
			require.Error(t, err, addr)
			require.Contains(t, err.Error(), "zk: ")
		}
	}
}

func TestRegistryZKConfig(t *testing.T) {
	c := DefaultConfig()
	require.Equal(t, []string{"localhost:2181"}, c.Servers)
	require.Equal(t, 5*time.Second, c.SessionTimeout)
	require.NotNil(t, c.Logger)
	require.NoError(t, Config{}.Validate())
	require.Error(t, Config{Servers: []string{" "}}.Validate())
	require.Error(t, Config{SessionTimeout: -1}.Validate())
	require.Error(t, Config{RetryInterval: -1}.Validate())
}
