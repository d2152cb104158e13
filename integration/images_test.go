//go:build integration

package integration

// The images `make image` builds (scripts/image.sh, deploy/docker/*), run
// with the plain docker CLI: the broker image on its own (non-root, RocksDB
// in a volume that outlives a killed container), and beside the MariaDB and
// ZooKeeper images on a private network (the MySQL store and the ZooKeeper
// registry, configured by a cluster.toml mounted into the broker).
//
// Without a Docker engine, or without the images, these tests skip, and fail
// when CI is set (CI has Docker, and `make test` builds the images).
// KITENATS_BROKER_IMAGE, KITENATS_MARIADB_IMAGE and KITENATS_ZOOKEEPER_IMAGE
// name other tags. Every container, volume and network a test creates is
// removed when it ends; every wait is bounded.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func imageName(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

var (
	brokerImage    = imageName("KITENATS_BROKER_IMAGE", "kitenats/broker:dev")
	mariadbImage   = imageName("KITENATS_MARIADB_IMAGE", "kitenats/mariadb:10.11")
	zookeeperImage = imageName("KITENATS_ZOOKEEPER_IMAGE", "kitenats/zookeeper:3.8")
)

// skipOrFail skips the test, or fails it when CI is set.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: the image tests must run)")
	}
	t.Skip(msg)
}

// needImages skips (fails on CI) unless a Docker engine answers and every
// image is present. Nothing is pulled: no registry can be reached.
func needImages(t *testing.T, images ...string) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		skipOrFail(t, "no docker CLI: the image tests need a Docker engine")
	}
	if out, err := dockerCmd(20*time.Second, "info", "--format", "{{.ServerVersion}}"); err != nil {
		skipOrFail(t, fmt.Sprintf("no Docker engine answers (docker info: %v: %s): the image tests need one", err, out))
	}
	for _, img := range images {
		if out, err := dockerCmd(20*time.Second, "image", "inspect", "--format", "{{.Id}}", img); err != nil {
			skipOrFail(t, fmt.Sprintf("image %s is missing (%s): build it with `make image`", img, firstLine(out)))
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// dockerCmd runs the docker CLI, bounded by timeout, and returns its
// output (stdout and stderr) trimmed.
func dockerCmd(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("docker %s: no answer within %v", args[0], timeout)
	}
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := dockerCmd(timeout, args...)
	require.NoError(t, err, "docker %s: %s", strings.Join(args, " "), out)
	return out
}

// uniqueName returns kitenats-it-<what>-<random>: names of containers,
// volumes and networks no other test or run uses.
func uniqueName(what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "kitenats-it-" + what + "-" + hex.EncodeToString(b[:])
}

// dockerVolume creates a named volume, removed when the test ends (after
// the containers that use it: cleanups run last-registered first).
func dockerVolume(t *testing.T) string {
	t.Helper()
	name := uniqueName("vol")
	mustDocker(t, 30*time.Second, "volume", "create", name)
	t.Cleanup(func() {
		if out, err := dockerCmd(30*time.Second, "volume", "rm", "-f", name); err != nil {
			t.Errorf("removing volume %s: %v: %s", name, err, out)
		}
	})
	return name
}

// dockerNetwork creates a private bridge network, removed when the test ends.
func dockerNetwork(t *testing.T) string {
	t.Helper()
	name := uniqueName("net")
	mustDocker(t, 30*time.Second, "network", "create", name)
	t.Cleanup(func() {
		if out, err := dockerCmd(30*time.Second, "network", "rm", name); err != nil {
			t.Errorf("removing network %s: %v: %s", name, err, out)
		}
	})
	return name
}

// container is one docker container a test started.
type container struct {
	t    *testing.T
	name string
}

// runContainer starts a detached container (docker run -d ARGS…). When the
// test ends it is removed with its anonymous volumes, after its log was
// written to the test log if the test failed.
func runContainer(t *testing.T, what string, args ...string) *container {
	t.Helper()
	c := &container{t: t, name: uniqueName(what)}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := dockerCmd(30*time.Second, "logs", "--tail", "60", c.name)
			t.Logf("container %s (%s), last 60 log lines:\n%s", c.name, what, out)
		}
		if out, err := dockerCmd(60*time.Second, "rm", "-f", "-v", c.name); err != nil && !strings.Contains(out, "No such container") {
			t.Errorf("removing container %s: %v: %s", c.name, err, out)
		}
	})
	mustDocker(t, 2*time.Minute, append([]string{"run", "-d", "--name", c.name}, args...)...)
	return c
}

// hostAddr is the 127.0.0.1:port the container's port (published with
// -p 127.0.0.1::PORT) is reachable at from the host.
func (c *container) hostAddr(port string) string {
	c.t.Helper()
	out := mustDocker(c.t, 30*time.Second, "port", c.name, port+"/tcp")
	addr := firstLine(out)
	require.True(c.t, strings.HasPrefix(addr, "127.0.0.1:"), "docker port %s %s: %q", c.name, port, out)
	return addr
}

func (c *container) exec(args ...string) string {
	c.t.Helper()
	return mustDocker(c.t, 30*time.Second, append([]string{"exec", c.name}, args...)...)
}

func (c *container) inspect(format string) string {
	c.t.Helper()
	return mustDocker(c.t, 30*time.Second, "inspect", "--format", format, c.name)
}

// requireRunning fails the test, with the container's log, if it stopped.
func (c *container) requireRunning() {
	c.t.Helper()
	if c.inspect("{{.State.Running}}") != "true" {
		out, _ := dockerCmd(30*time.Second, "logs", "--tail", "60", c.name)
		c.t.Fatalf("container %s stopped (%s):\n%s", c.name, c.inspect("exit code {{.State.ExitCode}}"), out)
	}
}

// waitHealthy waits until the image's HEALTHCHECK reports healthy.
func (c *container) waitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	status := ""
	for time.Now().Before(deadline) {
		c.requireRunning()
		if status = c.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}"); status == "healthy" {
			return
		}
		time.Sleep(250 * time.Millisecond) // polling a container we do not control
	}
	out, _ := dockerCmd(30*time.Second, "inspect", "--format", "{{json .State.Health}}", c.name)
	c.t.Fatalf("container %s not healthy within %v (status %q): %s", c.name, timeout, status, out)
}

// waitBroker waits until the broker in c answers $KQ.API.STAT at url.
func (c *container) waitBroker(url string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c.requireRunning()
		if last = ping(url); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling a container we do not control
	}
	c.t.Fatalf("broker in %s not ready at %s within %v: %v", c.name, url, timeout, last)
}

// imgConsumer is a bound consumer of one group: its deliveries arrive on ch.
type imgConsumer struct {
	nc *nats.Conn
	ch chan *nats.Msg
}

// bindConsumer connects to url as group and binds topic/messageType
// (persistent, so messages published while no consumer is live are kept).
func bindConsumer(t *testing.T, url, group, topic, messageType string) *imgConsumer {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(group, ""), nats.Timeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c := &imgConsumer{nc: nc, ch: make(chan *nats.Msg, 64)}
	deliver := "$KQ.DLV." + group + ".w1"
	_, err = nc.Subscribe(deliver, func(m *nats.Msg) { c.ch <- m })
	require.NoError(t, err)
	req, err := json.Marshal(map[string]any{
		"deliver":     deliver,
		"bindings":    []map[string]any{{"topic": topic, "messageType": messageType, "bindType": "direct", "persistent": true}},
		"maxInflight": 100,
	})
	require.NoError(t, err)
	reply, err := nc.Request("$KQ.API.BIND."+group, req, 10*time.Second)
	require.NoError(t, err, "BIND")
	var r struct {
		Consumer string          `json:"consumer"`
		Error    json.RawMessage `json:"error"`
	}
	require.NoError(t, json.Unmarshal(reply.Data, &r), "BIND reply %q", reply.Data)
	require.Empty(t, r.Error, "BIND reply %s", reply.Data)
	require.NotEmpty(t, r.Consumer, "BIND reply %s", reply.Data)
	return c
}

// next returns the next delivery, or fails the test after timeout.
func (c *imgConsumer) next(t *testing.T, timeout time.Duration) *nats.Msg {
	t.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-time.After(timeout):
		t.Fatalf("no delivery within %v", timeout)
		return nil
	}
}

// publishStored publishes body with id on kq.<topic>.<type> and requires a
// store ack naming groups matching groups.
func publishStored(t *testing.T, nc *nats.Conn, topic, messageType, id, body string, groups int) {
	t.Helper()
	reply, err := nc.RequestMsg(&nats.Msg{
		Subject: "kq." + topic + "." + messageType,
		Header:  nats.Header{"Kq-Msg-Id": {id}},
		Data:    []byte(body),
	}, 15*time.Second)
	require.NoError(t, err, "publish %s", id)
	var ack struct {
		Stream string          `json:"stream"`
		Seq    uint64          `json:"seq"`
		Groups int             `json:"groups"`
		Error  json.RawMessage `json:"error"`
	}
	require.NoError(t, json.Unmarshal(reply.Data, &ack), "ack %q", reply.Data)
	require.Empty(t, ack.Error, "publish %s: %s", id, reply.Data)
	require.Equal(t, topic, ack.Stream, "ack %s", reply.Data)
	require.NotZero(t, ack.Seq, "ack %s", reply.Data)
	require.Equal(t, groups, ack.Groups, "ack %s", reply.Data)
}

// receiveAck waits for the delivery of id, checks its body and acks it
// (AckSync: the broker confirmed the ack).
func (c *imgConsumer) receiveAck(t *testing.T, id, body string, timeout time.Duration) {
	t.Helper()
	m := c.next(t, timeout)
	require.Equal(t, id, m.Header.Get("Kq-Msg-Id"), "delivered headers %v", m.Header)
	require.Equal(t, body, string(m.Data))
	require.NoError(t, m.AckSync(nats.AckWait(10*time.Second)), "ack %s", id)
}

// checkImageBinary logs when the broker image holds another binary than the
// one this run built (the image is then older than the tree: make image).
func checkImageBinary(t *testing.T) {
	t.Helper()
	label := mustDocker(t, 30*time.Second, "image", "inspect", "--format", `{{index .Config.Labels "org.kitenats.binary"}}`, brokerImage)
	f, err := os.Open(binPath)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != label {
		t.Logf("note: %s holds binary %.12s, this tree built %.12s: `make image` rebuilds it", brokerImage, label, sum)
	}
}

// TestIntegrationImageBroker runs the broker image alone: it serves NATS
// clients from the host through a published port, runs as a non-root user,
// reports healthy, and keeps its RocksDB store in the /data volume, so a
// message stored before the container is SIGKILLed and removed is delivered
// by a new container on the same volume.
func TestIntegrationImageBroker(t *testing.T) {
	needImages(t, brokerImage)
	checkImageBinary(t)
	vol := dockerVolume(t)
	start := func() (*container, string) {
		c := runContainer(t, "broker", "-v", vol+":/data",
			"-p", "127.0.0.1::4222", "-p", "127.0.0.1::13801", "--health-interval", "1s", brokerImage)
		url := "nats://" + c.hostAddr("4222")
		c.waitBroker(url, 60*time.Second)
		return c, url
	}
	c, url := start()

	// Not root: the image's user, for the broker (PID 1) and for exec.
	require.Equal(t, "kitenats", c.inspect("{{.Config.User}}"))
	uid := c.exec("id", "-u")
	require.NotEqual(t, "0", uid, "docker exec id -u")
	status := c.exec("cat", "/proc/1/status")
	var pidUID string
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			pidUID = strings.Fields(v)[0]
		}
	}
	require.Equal(t, uid, pidUID, "PID 1 (the broker) runs as the image's user:\n%s", status)
	cmdline := c.exec("cat", "/proc/1/cmdline")
	require.Contains(t, cmdline, "rocksdb:///data", "the broker's command line")
	require.Contains(t, c.inspect("{{range .Mounts}}{{.Name}} {{.Destination}}{{end}}"), vol+" /data")
	// The HEALTHCHECK (GET /healthz through bash's /dev/tcp) passes.
	c.waitHealthy(60 * time.Second)
	admin := c.hostAddr("13801")
	require.NotEmpty(t, admin)

	cons := bindConsumer(t, url, "s-img", "img", "t")
	prod, err := nats.Connect(url)
	require.NoError(t, err)
	defer prod.Close()
	before := newID()
	publishStored(t, prod, "img", "t", before, "delivered live", 1)
	cons.receiveAck(t, before, "delivered live", 15*time.Second)
	require.NoError(t, cons.nc.Drain())

	// Stored for the group while no consumer is live, then the broker is
	// killed (SIGKILL: a crash, no clean shutdown) and the container removed.
	stored := newID()
	publishStored(t, prod, "img", "t", stored, "stored before the kill", 1)
	prod.Close()
	mustDocker(t, 30*time.Second, "kill", "--signal", "KILL", c.name)
	mustDocker(t, 60*time.Second, "rm", "-f", c.name)

	// A new container on the same volume delivers it, and only it.
	c2, url2 := start()
	require.NotEqual(t, c.name, c2.name)
	cons2 := bindConsumer(t, url2, "s-img", "img", "t")
	cons2.receiveAck(t, stored, "stored before the kill", 30*time.Second)
	select {
	case m := <-cons2.ch:
		t.Fatalf("unexpected delivery after the restart: %s %q", m.Header.Get("Kq-Msg-Id"), m.Data)
	case <-time.After(2 * time.Second):
	}
	require.NoError(t, cons2.nc.Drain())
}

// TestIntegrationImageServices runs the MariaDB and ZooKeeper images and a
// broker container beside them on a private network (-db mysql://mariadb…,
// -registry zk://zookeeper…, the topics in a mounted cluster.toml): the
// broker stores in MariaDB, registers in ZooKeeper under its advertised
// address, and a message goes from a host producer to a host consumer
// through it.
func TestIntegrationImageServices(t *testing.T) {
	needImages(t, brokerImage, mariadbImage, zookeeperImage)
	network := dockerNetwork(t)
	const rootPW, userPW = "root-secret", "kite-secret"
	db := runContainer(t, "mariadb", "--network", network, "--network-alias", "mariadb",
		"-e", "MARIADB_ROOT_PASSWORD="+rootPW, "-e", "MARIADB_USER=kite", "-e", "MARIADB_PASSWORD="+userPW,
		"-p", "127.0.0.1::3306", "--health-interval", "1s", mariadbImage)
	zk := runContainer(t, "zookeeper", "--network", network, "--network-alias", "zookeeper",
		"-p", "127.0.0.1::2181", "--health-interval", "1s", zookeeperImage)
	db.waitHealthy(120 * time.Second)
	zk.waitHealthy(120 * time.Second)
	require.NotEqual(t, "0", zk.exec("id", "-u"), "ZooKeeper runs as a non-root user")

	// MariaDB from the host: root with its password, the user with the
	// store's databases.
	dbAddr := db.hostAddr("3306")
	root, err := sql.Open("mysql", "root:"+rootPW+"@tcp("+dbAddr+")/")
	require.NoError(t, err)
	defer func() { _ = root.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, root.PingContext(ctx), "root@%s with MARIADB_ROOT_PASSWORD", dbAddr)
	user, err := sql.Open("mysql", "kite:"+userPW+"@tcp("+dbAddr+")/")
	require.NoError(t, err)
	defer func() { _ = user.Close() }()
	var schemas []string
	rows, err := user.QueryContext(ctx, `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'kite\_%' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		schemas = append(schemas, s)
	}
	require.NoError(t, rows.Close())
	require.Equal(t, []string{"kite_0", "kite_1", "kite_2", "kite_3"}, schemas, "databases the user kite sees")

	// The broker: its topics from a mounted cluster.toml (-configPath and
	// -clusterName from the environment), -db from KITENATS_DB (overriding
	// the file's memory://), -registry from the container's arguments.
	conf := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(conf, []byte(`[clusters.it]
topics = ["img"]
db = "memory://"
`), 0o644))
	b := runContainer(t, "broker", "--network", network, "--network-alias", "broker1",
		"-v", conf+":/etc/kitenats/cluster.toml:ro",
		"-e", "KITENATS_DB=mysql://mariadb:3306?db=kite&username=kite&password="+userPW+"&broker=broker1",
		"-e", "KITENATS_CONFIG=/etc/kitenats/cluster.toml", "-e", "KITENATS_CLUSTER=it",
		"-e", "KITENATS_ADVERTISE=broker1:13800",
		"-p", "127.0.0.1::4222", brokerImage, "-registry", "zk://zookeeper:2181")
	url := "nats://" + b.hostAddr("4222")
	b.waitBroker(url, 90*time.Second)
	cmdline := strings.Split(b.exec("cat", "/proc/1/cmdline"), "\x00")
	for _, want := range []string{"-configPath", "/etc/kitenats/cluster.toml", "-clusterName", "it", "-advertise", "broker1:13800", "-registry", "zk://zookeeper:2181"} {
		require.Contains(t, cmdline, want, "the broker's command line")
	}

	// Registered in ZooKeeper under the advertised address, as KiteQ lays it out.
	zc, events, err := gozk.Connect([]string{zk.hostAddr("2181")}, 10*time.Second, gozk.WithLogger(zkQuietLog{}))
	require.NoError(t, err)
	defer zc.Close()
	go func() {
		for range events { // drained until Close closes it
		}
	}()
	var servers []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		servers, _, err = zc.Children("/kiteq/server/img")
		if err == nil && slices.Contains(servers, "broker1:13800") {
			break
		}
		require.True(t, time.Now().Before(deadline), "broker1:13800 not under /kiteq/server/img within 30 s: %v, %v", servers, err)
		time.Sleep(100 * time.Millisecond) // polling ZooKeeper
	}

	// A message through the MySQL store; the NATS group's binding in ZooKeeper.
	cons := bindConsumer(t, url, "s-img", "img", "t")
	ok, _, err := zc.Exists("/kiteq/sub/img/s-img-bind")
	require.NoError(t, err)
	require.True(t, ok, "the group's binding node /kiteq/sub/img/s-img-bind")
	prod, err := nats.Connect(url)
	require.NoError(t, err)
	defer prod.Close()
	id := newID()
	publishStored(t, prod, "img", "t", id, "through mariadb", 1)
	cons.receiveAck(t, id, "through mariadb", 15*time.Second)
	var tables int
	require.NoError(t, user.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema LIKE 'kite\_%'`).Scan(&tables))
	require.Positive(t, tables, "the store's tables in MariaDB")
	require.NoError(t, cons.nc.Drain())
}

type zkQuietLog struct{}

func (zkQuietLog) Printf(string, ...any) {}
