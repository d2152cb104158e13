package txn_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

// TestTxnScripts runs the interaction scripts of testdata/*.txt, in the
// style of etcd-io/raft's: each directive is a command line, "----", and
// the expected transcript, up to a blank line. Commands:
//
//	init [first=5s] [interval=10s] [max=3] [final=rollback|dead-letter] [remember=N]
//	prepare id=ID              store a prepared message published now
//	answer id=ID action=A [async=commit|rollback]
//	                           what checks of ID answer from now on: commit,
//	                           rollback, unknown (default), error or timeout;
//	                           with async, Check first calls Resolve (an
//	                           answer arriving before Check returns)
//	tick                       one Coordinator.Tick
//	advance DURATION           move the fake clock
//	resolve id=ID action=commit|rollback
//	ack id=ID                  acknowledge a committed message (deletes it)
//	restart                    a new Coordinator over the same store
//	state                      every message the script prepared, and dead letters
//	list [offset=N] [limit=N]  Coordinator.List
//
// The transcript shows every check, release and store write the
// Coordinator makes, with times relative to the start. Regenerate with
// go test ./txn -run TestTxnScripts -rewrite.
func TestTxnScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

// directive is one command of a script with the text before it.
type directive struct {
	pre  []string // comment lines before the command
	line int
	cmd  string
	want string
}

func parseScript(t *testing.T, path string) []directive {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var ds []directive
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" {
			continue
		}
		if strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		d := directive{pre: pre, line: i + 1, cmd: l}
		pre = nil
		require.Less(t, i+1, len(lines), "%s:%d: command without ----", path, i+1)
		require.Equal(t, "----", lines[i+1], "%s:%d: command without ----", path, i+1)
		var out []string
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		d.want = strings.Join(out, "\n")
		ds = append(ds, d)
	}
	return ds
}

func runScript(t *testing.T, path string) {
	ds := parseScript(t, path)
	s := &scriptEnv{t: t}
	var out strings.Builder
	for _, d := range ds {
		got := s.run(d.cmd)
		if !*rewrite {
			require.Equal(t, d.want, got, "%s:%d: %s", path, d.line, d.cmd)
		}
		for _, p := range d.pre {
			out.WriteString(p + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", d.cmd, got)
	}
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(strings.TrimSuffix(out.String(), "\n")), 0o644))
	}
}

// scriptEnv is an env whose collaborators write what they do to events.
type scriptEnv struct {
	t       *testing.T
	e       *env
	events  []string
	answers map[string]scriptAnswer
	ids     []string
}

func (s *scriptEnv) emit(format string, args ...any) {
	s.events = append(s.events, fmt.Sprintf(format, args...))
}

func (s *scriptEnv) init(args map[string]string) {
	cfg := testConfig()
	for k, v := range args {
		switch k {
		case "first", "interval":
			d, err := time.ParseDuration(v)
			require.NoError(s.t, err)
			if k == "first" {
				cfg.FirstCheck = d
			} else {
				cfg.Interval = d
			}
		case "max", "remember":
			n, err := strconv.Atoi(v)
			require.NoError(s.t, err)
			if k == "max" {
				cfg.MaxChecks = n
			} else {
				cfg.Remember = n
			}
		case "final":
			require.NoError(s.t, cfg.FinalAction.UnmarshalText([]byte(v)))
		default:
			s.t.Fatalf("init: unknown argument %s", k)
		}
	}
	cfg.CheckTimeout = 10 * time.Millisecond
	s.e = newEnv(s.t, cfg)
	s.answers = map[string]scriptAnswer{}
	s.ids = nil
	s.e.w = &recordingWriter{w: s.e.b, s: s}
	s.e.cst = &recordingStore{Store: s.e.st, s: s}
	s.e.chk.setAnswer(s.answer)
	s.e.rel.setBefore(func(m *store.Message) error {
		s.emit("release %s/%s", m.Topic, m.ID)
		return nil
	})
	s.e.restart()
}

func (s *scriptEnv) answer(ctx context.Context, m *store.Message) (txn.Action, error) {
	a := s.answers[m.ID]
	if a.action == "" {
		a.action = "unknown"
	}
	s.emit("check %s/%s checks=%d", m.Topic, m.ID, m.Checks)
	if a.async != "" {
		err := s.e.c.Resolve(ctx, m.Topic, m.ID, a.async == "commit")
		s.emit("  resolve %s during the check: %s", a.async, result(err))
	}
	s.emit("  answer %s", a.action)
	switch a.action {
	case "error":
		return txn.Unknown, errors.New("no responders")
	case "timeout":
		<-ctx.Done()
		return txn.Unknown, ctx.Err()
	}
	act, err := txn.ParseAction(a.action)
	require.NoError(s.t, err)
	return act, nil
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, txn.ErrConflict):
		return "ErrConflict"
	case errors.Is(err, txn.ErrNotFound):
		return "ErrNotFound"
	}
	return "error: " + err.Error()
}

func (s *scriptEnv) run(cmd string) string {
	fields := strings.Fields(cmd)
	args := map[string]string{}
	var pos []string
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	if fields[0] != "init" && s.e == nil {
		s.init(nil)
	}
	s.events = nil
	var res string
	switch fields[0] {
	case "init":
		s.init(args)
		res = "ok"
	case "prepare":
		s.e.prepare(args["id"])
		s.ids = append(s.ids, args["id"])
		res = fmt.Sprintf("prepared %s/%s next-check=%s", topic, args["id"], since(s.e.c.NextCheck(s.e.clk.Now())))
	case "answer":
		s.answers[args["id"]] = scriptAnswer{action: args["action"], async: args["async"]}
		res = "ok"
	case "tick":
		s.e.tick()
		res = "done"
	case "advance":
		d, err := time.ParseDuration(pos[0])
		require.NoError(s.t, err)
		s.e.clk.Advance(d)
		res = "now " + since(s.e.clk.Now())
	case "resolve":
		res = result(s.e.resolve(args["id"], args["action"] == "commit"))
	case "ack":
		s.e.ack(args["id"])
		res = "ok"
	case "restart":
		s.e.restart()
		res = "restarted"
	case "state":
		res = s.state()
	case "list":
		res = s.list(args)
	default:
		s.t.Fatalf("unknown command %q", cmd)
	}
	return strings.Join(append(s.events, res), "\n")
}

func (s *scriptEnv) state() string {
	var out []string
	for _, id := range s.ids {
		m, err := s.e.get(id)
		rel := s.e.rel.count(id)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s/%s gone released=%d", topic, id, rel))
		case m.Prepared:
			out = append(out, fmt.Sprintf("%s/%s prepared checks=%d next-check=%s released=%d",
				topic, id, m.Checks, since(m.NextCheck), rel))
		default:
			var gs []string
			for _, g := range m.Groups {
				gs = append(gs, g.Group)
			}
			out = append(out, fmt.Sprintf("%s/%s committed pending=%s released=%d", topic, id, strings.Join(gs, ","), rel))
		}
	}
	dls, _, err := s.e.st.DeadLetters(context.Background(), topic, producer, 0, 100)
	require.NoError(s.t, err)
	for _, d := range dls {
		out = append(out, fmt.Sprintf("dead-letter %s/%s group=%s at=%s reason=%q",
			d.Message.Topic, d.Message.ID, d.Group, since(d.At), d.Reason))
	}
	if len(out) == 0 {
		return "(empty)"
	}
	return strings.Join(out, "\n")
}

func (s *scriptEnv) list(args map[string]string) string {
	offset, _ := strconv.Atoi(args["offset"])
	limit := 100
	if v, ok := args["limit"]; ok {
		limit, _ = strconv.Atoi(v)
	}
	items, total, err := s.e.c.List(context.Background(), offset, limit)
	require.NoError(s.t, err)
	out := []string{fmt.Sprintf("total=%d", total)}
	for _, p := range items {
		out = append(out, fmt.Sprintf("%s/%s type=%s group=%s age=%v checks=%d next-check=%s",
			p.Topic, p.ID, p.MessageType, p.Group, p.Age, p.Checks, since(p.NextCheck)))
	}
	return strings.Join(out, "\n")
}

// scriptAnswer is how checks of one message answer.
type scriptAnswer struct {
	action string // commit, rollback, unknown, error or timeout
	async  string // "", commit or rollback: Resolve first, from inside Check
}

// recordingWriter reports every update the Coordinator queues.
type recordingWriter struct {
	w txn.Writer
	s *scriptEnv
}

func (r *recordingWriter) Update(u store.Update, done func(error)) error {
	r.s.emit("write %s", describe(u))
	return r.w.Update(u, done)
}

// recordingStore reports every direct Store.Write of the Coordinator.
type recordingStore struct {
	store.Store
	s *scriptEnv
}

func (r *recordingStore) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	var us []string
	for _, u := range b.Updates {
		us = append(us, describe(u))
	}
	r.s.emit("write batch [%s]", strings.Join(us, "; "))
	return r.Store.Write(ctx, b)
}

func describe(u store.Update) string {
	s := fmt.Sprintf("%s %s/%s", u.Op, u.Topic, u.ID)
	switch u.Op {
	case store.OpCheck:
		s += fmt.Sprintf(" checks=%d next-check=%s", u.Attempts, since(u.Next))
	case store.OpCommit:
		for _, g := range u.Groups {
			s += " group=" + g.Group
		}
	case store.OpDead:
		s += fmt.Sprintf(" group=%s reason=%q", u.Group, u.Reason)
	default:
	}
	return s
}
