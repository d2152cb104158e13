package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPrintResultsRatios: the table has a CPU-per-message column and each
// reference row gets the ratios of msgs/s and of CPU per message.
func TestPrintResultsRatios(t *testing.T) {
	var out bytes.Buffer
	printResults(&out, []benchResult{
		{Name: "kitenats", Msgs: 1000, Elapsed: time.Second, Size: 512, CPU: 30 * time.Millisecond},
		{Name: "JetStream", Msgs: 2000, Elapsed: time.Second, Size: 512, CPU: 30 * time.Millisecond},
		{Name: "no cpu", Msgs: 1000, Elapsed: time.Second, Size: 512},
	})
	s := out.String()
	require.Contains(t, s, "CPU/msg")
	require.Contains(t, s, "30.0µs")
	require.Contains(t, s, "15.0µs")
	require.Contains(t, s, "ratio kitenats / JetStream: 0.500 (CPU per message: 2.00×)\n")
	require.Contains(t, s, "ratio kitenats / no cpu: 1.000\n", "no CPU figure, no CPU ratio")
}

func TestProcessCPUAdvances(t *testing.T) {
	before := processCPU()
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	require.Greater(t, processCPU(), before, "CPU time grows while the process computes")
}
