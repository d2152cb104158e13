package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAdoptRefusesBadInput: adopt says what is missing, and refuses any
// store but mysql:// without opening it (a rocksdb directory is neither
// created nor locked).
func TestAdoptRefusesBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-db", "mysql://127.0.0.1:1?db=kite"}, "-from names the dead broker"},
		{[]string{"-from", "a"}, "-db names the shared mysql:// store"},
		{[]string{"-db", "rocksdb://" + dir, "-from", "a"}, "is not a mysql:// store"},
		{[]string{"-db", "memory://", "-from", "a"}, "is not a mysql:// store"},
		{[]string{"-db", "mysql://127.0.0.1:1?db=kite", "-from", "a", "extra"}, "unexpected arguments"},
	} {
		var out bytes.Buffer
		err := adopt(tt.args, &out)
		require.ErrorContains(t, err, tt.want, "%v", tt.args)
	}
	_, err := os.Stat(dir)
	require.True(t, os.IsNotExist(err), "the rocksdb store was not opened")
}
