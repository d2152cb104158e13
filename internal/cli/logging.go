package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/kitenats/kitenats/config"
)

// openLogOutput returns where the daemon's logs go and how to close it:
// stderr when dir is empty, else dir/kitenats.log (dir created if
// missing). It checks that the file can be written, so that a bad
// -logPath is an error at start rather than logs lost in silence.
func openLogOutput(dir string) (io.Writer, func() error, error) {
	if dir == "" {
		return os.Stderr, func() error { return nil }, nil
	}
	path := filepath.Join(dir, config.LogFileName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: cannot write %s: %w", dir, config.LogFileName, err)
	}
	// The mode lumberjack gives the files it creates.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: cannot write %s: %w", dir, config.LogFileName, err)
	}
	if err := f.Close(); err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: %w", dir, err)
	}
	lj := &lumberjack.Logger{Filename: path, MaxSize: config.LogMaxSizeMB, MaxBackups: config.LogMaxBackups}
	return lj, lj.Close, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
