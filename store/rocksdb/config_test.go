package rocksdb

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStoreRocksDBParseURI(t *testing.T) {
	tests := []struct {
		uri      string
		dir      string
		dur      Durability
		interval time.Duration
		err      string // substring of the error; empty for success
	}{
		{uri: "rocksdb://./db/", dir: "./db/", dur: Async, interval: time.Second},
		{uri: "rocksdb://./data?durability=sync&syncInterval=200ms", dir: "./data", dur: Sync, interval: 200 * time.Millisecond},
		{uri: "rocksdb://./data?durability=async", dir: "./data", dur: Async, interval: time.Second},
		{uri: "rocksdb://./data?syncInterval=5s", dir: "./data", dur: Async, interval: 5 * time.Second},
		{uri: "rocksdb:///var/lib/kitenats", dir: "/var/lib/kitenats", dur: Async, interval: time.Second},
		{uri: "rocksdb://data", dir: "data", dur: Async, interval: time.Second},
		{uri: "rocksdb://./my%20db", dir: "./my db", dur: Async, interval: time.Second},
		{uri: "rocksdb://./data?", dir: "./data", dur: Async, interval: time.Second},
		{uri: "mysql://./data", err: "scheme must be rocksdb://"},
		{uri: "./data", err: "scheme must be rocksdb://"},
		{uri: "rocksdb://", err: "no directory"},
		{uri: "rocksdb:data", err: "want rocksdb://<dir>"},
		{uri: "rocksdb://u:p@./data", err: "want rocksdb://<dir>"},
		{uri: "rocksdb://./data#x", err: "want rocksdb://<dir>"},
		{uri: "rocksdb://./data?durability=fsync", err: `unknown durability "fsync"`},
		{uri: "rocksdb://./data?durability=sync&durability=async", err: `"durability" given 2 times`},
		{uri: "rocksdb://./data?syncInterval=10", err: "want a positive duration"},
		{uri: "rocksdb://./data?syncInterval=-1s", err: "want a positive duration"},
		{uri: "rocksdb://./data?cap=100", err: `unknown parameter "cap"`},
		{uri: "rocksdb://./data?%zz=1", err: "invalid URL escape"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			cfg, err := ParseURI(tt.uri)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.ErrorContains(t, err, "rocksdb: ")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.dir, cfg.Dir)
			require.Equal(t, tt.dur, cfg.Durability)
			require.Equal(t, tt.interval, cfg.SyncInterval)
			require.NotNil(t, cfg.Logger)
			require.NoError(t, cfg.Validate())
		})
	}
}

func TestStoreRocksDBConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	require.Equal(t, time.Second, DefaultConfig().SyncInterval)
	require.Equal(t, Async, DefaultConfig().Durability)
	require.NoError(t, Config{Dir: "d"}.Validate(), "zero values take defaults")
	for name, c := range map[string]Config{
		"Dir is required":         {},
		"invalid Durability":      {Dir: "d", Durability: 7},
		"negative SyncInterval":   {Dir: "d", SyncInterval: -time.Second},
		"negative BlockCacheSize": {Dir: "d", BlockCacheSize: -1},
		"negative WriteBuffer":    {Dir: "d", WriteBufferSize: -1},
	} {
		require.ErrorContains(t, c.Validate(), name, name)
	}
	_, err := Open(Config{})
	require.ErrorContains(t, err, "Dir is required")
}

func TestStoreRocksDBDurabilityText(t *testing.T) {
	for _, d := range []Durability{Async, Sync} {
		b, err := d.MarshalText()
		require.NoError(t, err)
		var got Durability
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, d, got)
	}
	require.Equal(t, "Durability(9)", Durability(9).String())
	_, err := Durability(9).MarshalText()
	require.Error(t, err)
}

func TestStoreRocksDBOpenRefusesOtherFormat(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	require.NoError(t, s.db.Put(s.wo, metaKey(), []byte("99")))
	require.NoError(t, s.Close())
	_, err := Open(Config{Dir: dir})
	require.ErrorContains(t, err, `format version "99"`)
}

func TestStoreRocksDBOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	_, err := Open(Config{Dir: dir})
	require.ErrorContains(t, err, "rocksdb: open")
	require.ErrorIs(t, err, ErrLocked)
}
