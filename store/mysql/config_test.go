package mysql

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kitenats/kitenats/store"
)

func TestStoreMySQLParseURI(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	defaults := func(c Config) Config {
		c.setDefaults()
		c.Logger = nil
		return c
	}
	tests := []struct {
		uri  string
		want Config
	}{
		{"mysql://localhost:3306?db=kite&username=root&password=&shardnum=4", defaults(Config{
			Addr: "localhost:3306", DB: "kite", Username: "root", ShardNum: 4, Broker: host,
		})},
		// KiteQ's documented example (kiteq-protocol.md §9.3).
		{"mysql://master:3306,slave:3306?db=kite&username=root&password=&batchUpdateSize=2000&batchDelSize=10000&flushSeconds=1&maxConn=20&shardnum=4", Config{
			Addr: "master:3306", Slave: "slave:3306", DB: "kite", Username: "root", ShardNum: 4,
			BatchUpdateSize: 2000, BatchDelSize: 10000, FlushInterval: time.Second, MaxConn: 20, Broker: host,
		}},
		{"mysql://db1?broker=kite-a&password=p%26ss&username=kq&flushSeconds=5&shardnum=16", defaults(Config{
			Addr: "db1:3306", Password: "p&ss", Username: "kq", Broker: "kite-a", ShardNum: 16, FlushInterval: 5 * time.Second,
		})},
		{"mysql://[::1]:3307/?db=k_2&shardnum=1&broker=b", defaults(Config{Addr: "[::1]:3307", DB: "k_2", ShardNum: 1, Broker: "b"})},
		{"mysql://h:1", defaults(Config{Addr: "h:1", Broker: host})},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := ParseURI(tt.uri)
			require.NoError(t, err)
			require.NotNil(t, got.Logger)
			got.Logger = nil
			require.Equal(t, tt.want, got)
		})
	}
}

func TestStoreMySQLParseURIErrors(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"memory://.", "want scheme mysql://"},
		{"mysql://?db=kite", "master address: empty"},
		{"mysql://h:port", "bad port"},
		{"mysql://h:70000", "bad port"},
		{"mysql://:3306", "no host"},
		{"mysql://a:1,b:x", "slave address"},
		{"mysql://a:1,b:2,c:3", "3 addresses"},
		{"mysql://h:1?shardnum=3", "shardnum 3: want 1, 2, 4, 8 or 16"},
		{"mysql://h:1?shardnum=32", "shardnum 32"},
		{"mysql://h:1?shardnum=0", "shardnum=\"0\": want a positive integer"},
		{"mysql://h:1?batchUpdateSize=-1", "batchUpdateSize=\"-1\""},
		{"mysql://h:1?batchDelSize=many", "batchDelSize=\"many\""},
		{"mysql://h:1?flushSeconds=0.5", "flushSeconds=\"0.5\""},
		{"mysql://h:1?maxConn=0", "maxConn=\"0\""},
		{"mysql://h:1?db=kite-prod", "db \"kite-prod\""},
		{"mysql://h:1?durability=sync", "parameter \"durability\": unknown"},
		{"mysql://h:1?%zz", "uri query"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			_, err := ParseURI(tt.uri)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "mysql: ")
		})
	}
}

func TestStoreMySQLConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.Equal(t, DefaultShardNum, c.ShardNum)
	require.Equal(t, DefaultBatchUpdateSize, c.BatchUpdateSize)
	require.Equal(t, DefaultBatchDelSize, c.BatchDelSize)
	require.Equal(t, DefaultFlushInterval, c.FlushInterval)
	require.Equal(t, DefaultMaxConn, c.MaxConn)
	require.ErrorContains(t, c.Validate(), "master address")
	c.Addr = "127.0.0.1:3306"
	require.NoError(t, c.Validate())
	c.Broker = string(make([]byte, 256))
	require.ErrorContains(t, c.Validate(), "broker name")
}

// TestStoreMySQLShardMapping checks KiteQ's mapping of ids to databases
// and tables (kiteq-protocol.md §9.7).
func TestStoreMySQLShardMapping(t *testing.T) {
	tests := []struct {
		id        string
		shardNum  int
		db, table int
		name      string
	}{
		{"5b4a6c5e0e5fa1d6a7f1c2e3d4b5a69f", 4, 3, 3, "`kite_3`.`kite_msg_3`"},
		{"5b4a6c5e0e5fa1d6a7f1c2e3d4b5a695", 4, 1, 1, "`kite_1`.`kite_msg_1`"},
		{"0000000000000000000000000000000a", 4, 2, 2, "`kite_2`.`kite_msg_2`"},
		{"0000000000000000000000000000000A", 4, 2, 2, "`kite_2`.`kite_msg_2`"},
		{"00000000000000000000000000000000", 4, 0, 0, "`kite_0`.`kite_msg_0`"},
		{"not-hex-g", 4, 0, 0, "`kite_0`.`kite_msg_0`"},
		{"", 4, 0, 0, "`kite_0`.`kite_msg_0`"},
		{"f", 1, 0, 15, "`kite_0`.`kite_msg_15`"},
		{"9", 2, 1, 1, "`kite_1`.`kite_msg_1`"},
		{"7", 8, 3, 1, "`kite_3`.`kite_msg_1`"},
		{"f", 16, 15, 0, "`kite_15`.`kite_msg_0`"},
	}
	for _, tt := range tests {
		db, table := ShardOf(tt.id, tt.shardNum)
		require.Equal(t, [2]int{tt.db, tt.table}, [2]int{db, table}, "id %q shardnum %d", tt.id, tt.shardNum)
		n := newNames("kite", tt.shardNum)
		require.Equal(t, tt.name, n.msg[partitionOf(tt.id)], "id %q shardnum %d", tt.id, tt.shardNum)
		require.Equal(t, db, n.dbOf(partitionOf(tt.id)))
	}
}

// TestStoreMySQLHeader checks that the header column is a KiteQ Header
// with every required field, and that its properties read back in order.
func TestStoreMySQLHeader(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := testMessage("0123456789abcdef0123456789abcdef", "trade", now, "s-a")
	m.Properties = []store.Property{{Key: "b", Value: "2"}, {Key: "a", Value: ""}, {Key: "ü\x00", Value: "v"}}
	m.Prepared = true
	b := encodeHeader(m)

	fields := map[protowire.Number]any{}
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		require.Positive(t, n)
		rest = rest[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(rest)
			require.Positive(t, n)
			fields[num], rest = v, rest[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(rest)
			require.Positive(t, n)
			if num != hdrProperties {
				fields[num] = string(v)
			}
			rest = rest[n:]
		default:
			t.Fatalf("field %d: wire type %d", num, typ)
		}
	}
	require.Equal(t, map[protowire.Number]any{
		hdrMessageID: m.ID, hdrTopic: "trade", hdrMessageType: "pay-succ",
		hdrExpiredTime: uint64(m.Expires.Unix()), hdrDeliverLimit: uint64(100), hdrGroupID: "p-trade",
		hdrCommit: uint64(0), hdrFly: uint64(0), hdrCreateTime: uint64(m.Created.Unix()),
	}, fields)

	props, err := decodeProperties(b)
	require.NoError(t, err)
	require.Equal(t, m.Properties, props)
	_, err = decodeProperties([]byte{0x4a, 0x05, 0x0a})
	require.ErrorIs(t, err, errHeader)
}
