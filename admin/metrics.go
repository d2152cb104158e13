package admin

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// Metric is one metric family of /metrics, in Prometheus's text format.
type Metric struct {
	Name    string // [a-zA-Z_:][a-zA-Z0-9_:]*
	Help    string
	Counter bool // a counter (only goes up); else a gauge
	Samples []Sample
}

// Sample is one value of a Metric, with its labels in the order given.
type Sample struct {
	Labels []Label
	Value  float64
}

// Label is one label of a Sample. Name is [a-zA-Z_][a-zA-Z0-9_]*; Value is
// any string.
type Label struct{ Name, Value string }

// contentType is Prometheus's text exposition format, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// writeMetrics writes ms in the text exposition format: a HELP and a TYPE
// line per family, then one line per sample.
func writeMetrics(w io.Writer, ms []Metric) error {
	bw := bufio.NewWriter(w)
	for _, m := range ms {
		typ := "gauge"
		if m.Counter {
			typ = "counter"
		}
		bw.WriteString("# HELP " + m.Name + " " + helpEscaper.Replace(m.Help) + "\n")
		bw.WriteString("# TYPE " + m.Name + " " + typ + "\n")
		for _, s := range m.Samples {
			bw.WriteString(m.Name)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l.Name + `="` + labelEscaper.Replace(l.Value) + `"`)
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.Value))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatValue writes v as Prometheus reads it: integers without an
// exponent, and +Inf, -Inf and NaN by those names.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
