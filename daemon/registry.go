package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/file"
	"github.com/kitenats/kitenats/registry/zk"
)

// registryWaitInitial bounds the wait for a registry's first full state of
// each topic at start-up: serving before it is known would drop publishes
// for groups that are bound but not yet learnt.
const registryWaitInitial = 15 * time.Second

// openRegistry opens the registry a URI names: zk://host:port,… or
// file://path.yaml. Its errors start with "open registry URI".
// It waits at most registryWaitInitial for a session, and no longer than
// ctx.
func openRegistry(ctx context.Context, uri string, log *slog.Logger) (registry.Registry, error) {
	wctx, cancel := context.WithTimeout(ctx, registryWaitInitial)
	defer cancel()
	r, err := openRegistryURI(wctx, uri, log)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (start-up interrupted)", err)
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("%w (nothing within %s: is the registry reachable?)", err, registryWaitInitial)
	}
	if err != nil {
		// Never the backend's typed nil (see openStore).
		return nil, fmt.Errorf("open registry %s: %w", uri, err)
	}
	return r, nil
}

func openRegistryURI(ctx context.Context, uri string, log *slog.Logger) (registry.Registry, error) {
	switch {
	case strings.HasPrefix(uri, "zk://"):
		servers, err := zk.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		r, err := zk.New(ctx, zk.Config{Servers: servers, Logger: log.With("component", "zk")})
		if err != nil {
			return nil, err
		}
		return r, nil
	case strings.HasPrefix(uri, "file://"):
		path, err := file.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		r, err := file.New(file.Config{Path: path, Logger: log.With("component", "registry")})
		if err != nil {
			return nil, err
		}
		return r, nil
	default:
		return nil, errors.New("want zk://host:port,… or file://path.yaml")
	}
}

// advertisedAddr is the host:port registered for KiteQ clients: the
// configured advertise address, else -bind when its host is specific.
// KiteQ registered -bind verbatim, so ":13800" only worked on one machine.
func advertisedAddr(cfg config.Config) (string, error) {
	if cfg.Advertise != "" {
		return cfg.Advertise, nil
	}
	host, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("-bind %s is not an address clients can dial: set -advertise host:port", cfg.Bind)
	}
	return cfg.Bind, nil
}

// withBoundPort returns adv with its port 0 replaced by the port the KiteQ
// listener was given, so that -bind host:0 advertises the port clients can
// dial rather than ":0". Any other adv is returned as it is.
func withBoundPort(adv string, bound net.Addr) string {
	host, port, err := net.SplitHostPort(adv)
	ta, ok := bound.(*net.TCPAddr)
	if err != nil || port != "0" || !ok {
		return adv
	}
	return net.JoinHostPort(host, strconv.Itoa(ta.Port))
}
