package main

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
		"natsproto":             {"semantics", "store", "registry", "kqerr"},
		"compat":                {"compat/wire", "store", "kqerr"},
		"compat/wire":           {},
		"compat/compattest":     {"compat/wire"},
		"bridge":                {},
		"admin":                 {},
		"client":                {"kqerr"},
		"config":                {"txn"},
		"daemon": {"admin", "bridge", "compat", "config", "kqerr", "natsproto", "registry", "registry/file", "registry/zk",
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
				// The domain packages report what metrics need through
				// observer hooks that admin.Metrics implements.
				if strings.HasPrefix(imp, "github.com/prometheus/") {
					require.Equal(t, "admin", rel, "only admin may import %s", imp)
				}
				// The adapters and the core reach NATS through interfaces
				// the root package satisfies.
				if strings.HasPrefix(imp, "github.com/nats-io/") {
					require.NotContains(t, []string{"natsproto", "semantics", "compat", "txn"}, rel, "%s must not import %s", rel, imp)
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
	out := captureStdout(t, func() { require.NoError(t, run([]string{"help"})) })
	require.Contains(t, out, "usage: kitenats")
	require.ErrorIs(t, run([]string{"stat", "-h"}), flag.ErrHelp)
	require.ErrorContains(t, run([]string{"-nats", "localhost"}), "-nats", "serve is the default, and its bad config is an error naming the key")
}

// TestHelpListsEveryCommand: -h, --help and help list every command of the
// table with its one-line summary, and say how to get a command's flags;
// an unknown command's error lists them too.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		out := captureStdout(t, func() { require.NoError(t, run(args)) })
		for _, c := range commands {
			require.NotEmpty(t, c.Summary, "%s has no summary", c.Name)
			require.NotContains(t, c.Summary, "\n", "%s: the summary is one line", c.Name)
			require.Regexp(t, `(?m)^  `+c.Name+` +`+regexp.QuoteMeta(c.Summary)+`$`, out, "%v lists %s", args, c.Name)
		}
		require.Regexp(t, `(?m)^  help +\S`, out)
		require.Contains(t, out, "kitenats CMD -h")
	}
	err := run([]string{"frobnicate"})
	for _, c := range commands {
		require.ErrorContains(t, err, c.Name)
	}
	names := map[string]bool{}
	for _, c := range commands {
		names[c.Name] = true
	}
	for _, want := range []string{"serve", "pub", "sub", "bench", "stat", "dlq", "tx", "adopt"} {
		require.True(t, names[want], "%s is in the table", want)
	}
}

// TestEveryCommandExplainsItself: `kitenats CMD -h` and `kitenats help CMD`
// print a usage line, flags and an example, and -h returns flag.ErrHelp.
func TestEveryCommandExplainsItself(t *testing.T) {
	for _, c := range commands {
		var err error
		out := captureStdout(t, func() { err = run([]string{c.Name, "-h"}) })
		require.ErrorIs(t, err, flag.ErrHelp, c.Name)
		require.Contains(t, out, "usage: kitenats "+c.Name, c.Name)
		require.Contains(t, out, "flags:", c.Name)
		require.Regexp(t, `examples:\n  kitenats `, out, c.Name)
		require.Equal(t, out, captureStdout(t, func() { require.NoError(t, run([]string{"help", c.Name})) }), c.Name)
	}
	require.ErrorContains(t, run([]string{"help", "frobnicate"}), `unknown command "frobnicate"`)
	out := captureStdout(t, func() { require.ErrorIs(t, run([]string{"pub", "-h"}), flag.ErrHelp) })
	require.Contains(t, out, "TOPIC TYPE BODY")
	require.Contains(t, out, `kitenats pub -group p-shop trade pay.succ '{"order":42}'`)
}

// captureStdout returns what f printed on os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stdout")
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = tmp
	defer func() { os.Stdout = saved }()
	f()
	require.NoError(t, tmp.Close())
	b, err := os.ReadFile(tmp.Name())
	require.NoError(t, err)
	return string(b)
}
