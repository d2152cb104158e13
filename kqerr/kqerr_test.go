package kqerr

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorTable(t *testing.T) {
	want := map[Code]int{400: 14001, 401: 14401, 403: 14403, 404: 14004, 409: 14009, 413: 10054, 429: 14029, 500: 14500, 501: 14501, 503: 14503}
	for c, ec := range want {
		require.Equal(t, ec, c.ErrCode(), "code %d", c)
		require.Equal(t, c == TooMany || c == Unavailable, c.Retriable(), "code %d", c)
	}
	require.Len(t, Rows(), len(want))
	require.Equal(t, 14500, Code(418).ErrCode(), "an unknown code is internal")
	require.False(t, Code(418).Retriable())
}

func TestError(t *testing.T) {
	cause := errors.New("disk")
	e := New(Unavailable, cause, "store unavailable: %s", "full")
	require.Equal(t, "kq: store unavailable: full", e.Error())
	require.True(t, e.Retriable())
	require.Equal(t, 14503, e.ErrCode())
	require.ErrorIs(t, e, cause)
	require.Same(t, e, From(fmt.Errorf("wrapped: %w", e)))

	in := From(cause)
	require.Equal(t, Internal, in.Code)
	require.Equal(t, "kq: internal error", in.Description)
	require.ErrorIs(t, in, cause)
}

// TestProtocolTable checks that the table of NATS-PROTOCOL.md §8 and Rows
// agree, row for row and in order.
func TestProtocolTable(t *testing.T) {
	b, err := os.ReadFile("../docs/NATS-PROTOCOL.md")
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "\n## 8. ")
	require.NotEqual(t, -1, i, "NATS-PROTOCOL.md has no §8")
	sec := doc[i+1:]
	if j := strings.Index(sec, "\n## "); j >= 0 {
		sec = sec[:j]
	}
	var got []Row
	header := false
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "|") {
			if header {
				break // the end of the table
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if !header {
			require.Equal(t, []string{"code", "err_code", "when", "retriable", "KiteQ feedback"}, cells, "§8 table header")
			header = true
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		require.Len(t, cells, 5, "§8 row %q", line)
		code, err := strconv.Atoi(cells[0])
		require.NoError(t, err, "§8 row %q", line)
		ec, err := strconv.Atoi(cells[1])
		require.NoError(t, err, "§8 row %q", line)
		require.Contains(t, []string{"yes", "no"}, cells[3], "§8 row %q", line)
		// Every refusal's KiteQ feedback is its description.
		require.Contains(t, []string{"same", "same description"}, cells[4], "§8 row %q", line)
		got = append(got, Row{Code: Code(code), ErrCode: ec, When: cells[2], Retriable: cells[3] == "yes"})
	}
	require.True(t, header, "§8 has no table")
	var want []Row
	for _, r := range Rows() {
		if !r.KiteQOnly {
			want = append(want, r)
		}
	}
	require.Equal(t, want, got, "NATS-PROTOCOL.md §8 and kqerr's table differ")
}
