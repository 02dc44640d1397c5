package engine

import (
	"bytes"
	"testing"

	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// TestAppendBlocks checks that uploads of adjacent blocks are served
// together, across piece and file boundaries, and that each block still
// goes out as its own piece message with the right data.
func TestAppendBlocks(t *testing.T) {
	tt := newTestTorrent(t, []int64{40_000, 100_000}, 32<<10)
	for _, dir := range []bool{false, true} {
		var store storage.Storage = tt.seedStore(t)
		if dir {
			// A Dir serves runs with preadv; Memory block by block.
			d, err := storage.OpenDir(t.TempDir(), tt.layout, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.WriteAt(tt.data, 0); err != nil {
				t.Fatal(err)
			}
			store = d
		}
		tor, err := New(tt.info, tt.hash, tt.layout, store, Config{})
		if err != nil {
			t.Fatal(err)
		}
		up := func(index, begin, length uint32) outItem {
			return outItem{upload: true, msg: peerwire.Message{ID: peerwire.Request, Index: index, Begin: begin, Length: length}}
		}
		items := []outItem{
			up(0, 16384, 16384), up(1, 0, 16384), up(1, 16384, 16384), // adjacent, across pieces and into file b
			up(1, 16384, 16384), // a repeat: not adjacent
			{msg: peerwire.Message{ID: peerwire.Have, Index: 2}},
			up(3, 0, 100), up(3, 100, 200), // short blocks
		}
		var out []byte
		var bufs [][]byte
		runs := 0
		for i := 0; i < len(items); {
			if !items[i].upload {
				out = items[i].msg.AppendTo(out)
				i++
				continue
			}
			run := tor.adjacentUploads(items[i:])
			out, bufs, err = tor.appendBlocks(out, run, bufs)
			if err != nil {
				t.Fatal(err)
			}
			runs++
			i += len(run)
		}
		if runs != 3 {
			t.Errorf("%d runs of adjacent uploads, want 3", runs)
		}
		dec := peerwire.NewDecoder(bytes.NewReader(out), peerwire.Limits{NumPieces: tt.info.NumPieces()})
		for _, it := range items {
			m, err := dec.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !it.upload {
				if m.ID != it.msg.ID {
					t.Fatalf("got message %v, want %v", m.ID, it.msg.ID)
				}
				continue
			}
			off := tor.blockOffset(it.msg)
			if m.ID != peerwire.Piece || m.Index != it.msg.Index || m.Begin != it.msg.Begin ||
				!bytes.Equal(m.Payload, tt.data[off:off+int64(it.msg.Length)]) {
				t.Fatalf("dir %v: block %d+%d: got id %v %d+%d with %d bytes, or wrong data", dir, it.msg.Index, it.msg.Begin, m.ID, m.Index, m.Begin, len(m.Payload))
			}
		}
		if _, err := dec.Next(); err == nil {
			t.Error("extra messages after the expected ones")
		}
	}
}
