package mysql

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Defaults, as KiteQ's mysql store has them (kiteq-protocol.md §9.3).
const (
	DefaultDB              = "kite"
	DefaultUsername        = "root"
	DefaultShardNum        = 4
	DefaultBatchUpdateSize = 100
	DefaultBatchDelSize    = 100
	DefaultFlushInterval   = time.Second
	DefaultMaxConn         = 20
	defaultPort            = "3306"
)

// shardSeed is KiteQ's SHARD_SEED: ids hash to 16 partitions.
const shardSeed = 16

// Limits on the names we store: the widths of the VARBINARY columns.
const (
	maxIDLen     = 64
	maxNameLen   = 255 // topic, message type, groups, broker name
	maxBodyLen   = 1<<24 - 1
	maxReasonLen = 1024
)

// Config configures a Store. Zero fields take their defaults in Open.
type Config struct {
	// Addr is the master's host:port. Required.
	Addr string
	// Slave is an optional read replica's host:port. Only Stats and
	// DeadLetters read from it (as KiteQ's Length and DLQ query do):
	// delivery state is always read from the master, because replication
	// lag would redeliver acknowledged messages.
	Slave string
	// DB is the prefix of the shard databases: {DB}_0 … {DB}_{ShardNum-1}.
	// Letters, digits and '_' only. Default "kite".
	DB string
	// Username and Password log in to both servers. Default user "root".
	Username string
	Password string
	// ShardNum is the number of databases; it must divide 16, and each
	// database holds 16/ShardNum message tables. Default 4.
	ShardNum int
	// BatchUpdateSize is the most rows one multi-row INSERT or UPDATE
	// carries (rounded down to a power of two for prepared statements).
	// Default 100.
	BatchUpdateSize int
	// BatchDelSize is the most rows one DELETE names, rounded the same
	// way. Default 100.
	BatchDelSize int
	// FlushInterval is how often expired dedup entries are purged
	// (KiteQ's flushSeconds). Default 1 s.
	FlushInterval time.Duration
	// MaxConn is the most open connections per server; half of them are
	// kept idle. Default 20.
	MaxConn int
	// Broker is this broker's name, written to kite_server: Due and
	// DueChecks return only its messages. Default: the hostname.
	Broker string
	// Logger receives background errors (dedup purge). Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default set and no Addr.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.DB == "" {
		c.DB = DefaultDB
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.ShardNum == 0 {
		c.ShardNum = DefaultShardNum
	}
	if c.BatchUpdateSize == 0 {
		c.BatchUpdateSize = DefaultBatchUpdateSize
	}
	if c.BatchDelSize == 0 {
		c.BatchDelSize = DefaultBatchDelSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxConn == 0 {
		c.MaxConn = DefaultMaxConn
	}
	if c.Broker == "" {
		if h, err := os.Hostname(); err == nil {
			c.Broker = h
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

var dbNameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,60}$`)

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if err := validAddr(c.Addr); err != nil {
		return fmt.Errorf("mysql: config: master address: %w", err)
	}
	if c.Slave != "" {
		if err := validAddr(c.Slave); err != nil {
			return fmt.Errorf("mysql: config: slave address: %w", err)
		}
	}
	switch {
	case !dbNameRE.MatchString(c.DB):
		return fmt.Errorf("mysql: config: db %q: want 1-60 letters, digits or '_'", c.DB)
	case c.ShardNum <= 0 || c.ShardNum > shardSeed || shardSeed%c.ShardNum != 0:
		return fmt.Errorf("mysql: config: shardnum %d: want 1, 2, 4, 8 or 16 (a divisor of 16)", c.ShardNum)
	case c.BatchUpdateSize <= 0:
		return fmt.Errorf("mysql: config: batchUpdateSize %d: want > 0", c.BatchUpdateSize)
	case c.BatchDelSize <= 0:
		return fmt.Errorf("mysql: config: batchDelSize %d: want > 0", c.BatchDelSize)
	case c.FlushInterval <= 0:
		return fmt.Errorf("mysql: config: flush interval %v: want > 0", c.FlushInterval)
	case c.MaxConn <= 0:
		return fmt.Errorf("mysql: config: maxConn %d: want > 0", c.MaxConn)
	case c.Broker == "" || len(c.Broker) > maxNameLen:
		return fmt.Errorf("mysql: config: broker name %q: want 1-%d bytes", c.Broker, maxNameLen)
	}
	return nil
}

func validAddr(a string) error {
	if a == "" {
		return errors.New("empty")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", a, port)
	}
	return nil
}

// ParseURI parses KiteQ's store URI,
//
//	mysql://master:3306[,slave:3306]?db=kite&username=root&password=&shardnum=4&batchUpdateSize=100&batchDelSize=100&flushSeconds=1&maxConn=20
//
// plus kitenats' broker=<name> (default: the hostname). A host without a
// port gets 3306. Unknown parameters are an error, so a typo is never
// silently ignored. The result has every default set and is validated.
func ParseURI(uri string) (Config, error) {
	rest, ok := strings.CutPrefix(uri, "mysql://")
	if !ok {
		return Config{}, fmt.Errorf("mysql: uri %q: want scheme mysql://", uri)
	}
	hosts, rawQuery, _ := strings.Cut(rest, "?")
	hosts = strings.TrimSuffix(hosts, "/")
	var c Config
	addrs := strings.Split(hosts, ",")
	if len(addrs) > 2 {
		return Config{}, fmt.Errorf("mysql: uri: %d addresses: want master[,slave]", len(addrs))
	}
	for i, a := range addrs {
		a = strings.TrimSpace(a)
		if a != "" && !strings.Contains(a, ":") {
			a = net.JoinHostPort(a, defaultPort)
		}
		if i == 0 {
			c.Addr = a
		} else {
			c.Slave = a
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("mysql: uri query: %w", err)
	}
	for k, vs := range q {
		if err := c.setParam(k, vs[len(vs)-1]); err != nil {
			return Config{}, err
		}
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) setParam(k, v string) error {
	num := func() (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("mysql: uri parameter %s=%q: want a positive integer", k, v)
		}
		return n, nil
	}
	var err error
	switch k {
	case "db":
		c.DB = v
	case "username":
		c.Username = v
	case "password":
		c.Password = v
	case "broker":
		c.Broker = v
	case "shardnum":
		c.ShardNum, err = num()
	case "batchUpdateSize":
		c.BatchUpdateSize, err = num()
	case "batchDelSize":
		c.BatchDelSize, err = num()
	case "maxConn":
		c.MaxConn, err = num()
	case "flushSeconds":
		var n int
		n, err = num()
		c.FlushInterval = time.Duration(n) * time.Second
	default:
		return fmt.Errorf("mysql: uri parameter %q: unknown", k)
	}
	return err
}

// driverConfig returns the go-sql-driver configuration for addr. No default
// database: every statement names its tables fully.
func (c *Config) driverConfig(addr string) *driver.Config {
	dc := driver.NewConfig()
	dc.User = c.Username
	dc.Passwd = c.Password
	dc.Net = "tcp"
	dc.Addr = addr
	dc.Timeout = 30 * time.Second
	dc.ReadTimeout = 30 * time.Second
	dc.WriteTimeout = 30 * time.Second
	// Statements that are not prepared (see stmtCache) take one round
	// trip instead of three (prepare, execute, close).
	dc.InterpolateParams = true
	dc.MaxAllowedPacket = 0 // read it from the server
	dc.Params = map[string]string{
		// Shorter than ReadTimeout, so a lock wait fails as a retryable
		// server error instead of a broken connection.
		"innodb_lock_wait_timeout": "10",
	}
	// Binary connection character set: literals are bytes, taken as is.
	dc.Collation = "binary"
	return dc
}
