package main

import (
	"encoding/json"
	"flag"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArchitectureImports enforces ARCHITECTURE.md A.1: which of our
// packages each package may import (non-test code). .golangci.yml's
// depguard rules say the same for `make lint`.
func TestArchitectureImports(t *testing.T) {
	const mod = "github.com/kitenats/kitenats"
	allowed := map[string][]string{
		"store":                 {},
		"registry":              {},
		"kqerr":                 {},
		"store/memory":          {"store"},
		"store/rocksdb":         {"store"},
		"store/mysql":           {"store"},
		"store/storetest":       {"store"},
		"registry/zk":           {"registry"},
		"registry/file":         {"registry"},
		"registry/registrytest": {"registry"},
		"semantics":             {"store", "registry", "kqerr"},
		"txn":                   {"store", "kqerr"},
		"compat":                {"compat/wire", "store", "kqerr"},
		"compat/wire":           {},
		"compat/compattest":     {"compat/wire"},
		"bridge":                {},
		"admin":                 {},
		"client":                {"kqerr"},
		"config":                {"txn"},
		"daemon": {"admin", "bridge", "compat", "config", "registry", "registry/file", "registry/zk",
			"semantics", "store", "store/memory", "store/mysql", "store/rocksdb", "txn"},
		"internal/cli":     {"client", "config", "daemon", "store/mysql"},
		"internal/bench":   {"bridge", "compat/wire", "config", "daemon", "registry"},
		"internal/powerfs": {},                                 // test infrastructure: a FUSE disk that loses unsynced writes
		"":                 {"internal/cli", "internal/bench"}, // main: picks the subcommand
	}
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		require.NoError(t, dec.Decode(&p))
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, mod), "/")
		if strings.HasPrefix(rel, "integration") {
			continue
		}
		ok, known := allowed[rel]
		require.True(t, known, "package %s is not in ARCHITECTURE.md's table: add it there and here", rel)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, mod+"/") {
				if imp == "github.com/nats-io/nats-server/v2/server" {
					require.Equal(t, "bridge", rel, "only bridge may import nats-server")
				}
				continue
			}
			dep := strings.TrimPrefix(imp, mod+"/")
			require.Contains(t, ok, dep, "%s must not import %s", rel, dep)
		}
	}
}

// TestRootHoldsMainOnly: the repository root is main.go and its test;
// everything else has a package whose name says what it holds
// (ARCHITECTURE.md's layout).
func TestRootHoldsMainOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"main.go", "main_test.go"}, files)
}

func TestRunPicksTheSubcommand(t *testing.T) {
	require.ErrorContains(t, run([]string{"frobnicate"}), `unknown command "frobnicate"`)
	require.NoError(t, run([]string{"help"}))
	require.ErrorIs(t, run([]string{"stat", "-h"}), flag.ErrHelp)
	require.ErrorContains(t, run([]string{"-nats", "localhost"}), "-nats", "serve is the default, and its bad config is an error naming the key")
	for name := range commands {
		require.ErrorIs(t, run([]string{name, "-h"}), flag.ErrHelp, name)
	}
}
