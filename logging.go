package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// The daemon's log file, with -logPath DIR (KiteQ's flag): DIR/kitenats.log,
// rotated when it reaches logMaxSizeMB, the rotated files renamed
// kitenats-<UTC time>.log beside it and the logMaxBackups newest kept.
// Without -logPath the logs go to stderr.
const (
	logFileName   = "kitenats.log"
	logMaxSizeMB  = 100
	logMaxBackups = 10
)

// openLogOutput returns where the daemon's logs go and how to close it:
// stderr when dir is empty, else dir/kitenats.log (dir created if
// missing). It checks that the file can be written, so that a bad
// -logPath is an error at start rather than logs lost in silence.
func openLogOutput(dir string) (io.Writer, func() error, error) {
	if dir == "" {
		return os.Stderr, func() error { return nil }, nil
	}
	path := filepath.Join(dir, logFileName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: cannot write %s: %w", dir, logFileName, err)
	}
	// The mode lumberjack gives the files it creates.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: cannot write %s: %w", dir, logFileName, err)
	}
	if err := f.Close(); err != nil {
		return nil, nil, fmt.Errorf("-logPath %s: %w", dir, err)
	}
	lj := &lumberjack.Logger{Filename: path, MaxSize: logMaxSizeMB, MaxBackups: logMaxBackups}
	return lj, lj.Close, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
