package rocksdb

import (
	"testing"

	"github.com/linxGnu/grocksdb"
)

// TestOpBatchCollapsesFreshKeys pins what each passes on: the writes of a key
// put fresh and deleted in the same batch vanish, a fresh key put twice
// keeps its last put, and every other key keeps all its writes in order
// (a delete must never lose its put).
func TestOpBatchCollapsesFreshKeys(t *testing.T) {
	var b opBatch
	b.PutFresh([]byte("m1"), []byte("rec")) // saved…
	b.PutFresh([]byte("d1"), nil)           // …indexed…
	b.Put([]byte("u1"), []byte("dedup"))    // (dedup entry: stays)
	b.Delete([]byte("d1"))                  // …acked: gone
	b.Delete([]byte("m1"))                  //
	b.PutFresh([]byte("m2"), []byte("v1"))  // saved, then rewritten
	b.Put([]byte("m2"), []byte("v2"))       //
	b.Delete([]byte("d9"))                  // an old key: kept
	b.Put([]byte("d9"), nil)                // re-put after its delete: kept
	b.Delete([]byte("m9"))                  // an old record: kept
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	if n := b.each(func(o op) { o.addTo(wb) }); n != 5 {
		t.Fatalf("each passed %d writes, want 5 (u1, m2's last put, d9 twice, m9)", n)
	}
	if wb.Count() != 5 {
		t.Fatalf("WriteBatch holds %d writes, want 5", wb.Count())
	}
	var got []string
	it := wb.NewIterator()
	for it.Next() {
		r := it.Record()
		got = append(got, string(r.Key)+"="+string(r.Value))
	}
	want := []string{"d9=", "d9=", "m2=v2", "m9=", "u1=dedup"}
	if len(got) != len(want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("records %q, want %q", got, want)
		}
	}
}
