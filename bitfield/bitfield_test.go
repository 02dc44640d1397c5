package bitfield

import "testing"

func TestFromBytes(t *testing.T) {
	f := New(10)
	f.Set(0)
	f.Set(9)
	if got := f.Bytes(); got[0] != 0x80 || got[1] != 0x40 {
		t.Fatalf("wire form %x", got)
	}
	g, err := FromBytes(f.Bytes(), 10)
	if err != nil || !g.Has(0) || !g.Has(9) || g.Has(1) || g.Count() != 2 {
		t.Fatalf("round trip: %v %v", g, err)
	}
	if _, err := FromBytes([]byte{0, 0x20}, 10); err != ErrSpareBits {
		t.Fatalf("spare bits: %v", err)
	}
	if _, err := FromBytes([]byte{0}, 10); err == nil {
		t.Fatal("short bitfield accepted")
	}
	f.SetAll()
	if !f.Full() || f.Bytes()[1] != 0xc0 {
		t.Fatalf("SetAll: %x", f.Bytes())
	}
	if f.Has(10) || f.Has(-1) {
		t.Fatal("out of range Has")
	}
}

// naiveCount counts the set bits of the wire form, as Count once did.
func naiveCount(f Bitfield) int {
	c := 0
	for i := 0; i < f.Len()+8; i++ {
		if i < f.Len() && f.Has(i) {
			c++
		}
	}
	return c
}

func checkCount(t *testing.T, what string, f Bitfield) {
	t.Helper()
	if got, want := f.Count(), naiveCount(f); got != want || f.Full() != (want == f.Len()) {
		t.Fatalf("%s: Count %d, Full %v; the set holds %d of %d", what, got, f.Full(), want, f.Len())
	}
	if got := popCount(f.Bytes()); got != f.Count() {
		t.Fatalf("%s: %d bits set in the wire form, Count %d", what, got, f.Count())
	}
}

// TestCountFollowsMutators: the cached count stays right through every
// mutator, setting or clearing a piece twice, copies (which share the
// set) and clones (which do not).
func TestCountFollowsMutators(t *testing.T) {
	var zero Bitfield
	checkCount(t, "zero value", zero)
	if !zero.Full() || zero.Len() != 0 || zero.Clone().Len() != 0 || zero.Bytes() != nil {
		t.Fatal("zero value is not an empty set of size zero")
	}
	zero.SetAll()

	f := New(13)
	checkCount(t, "new", f)
	f.Set(3)
	f.Set(3)
	checkCount(t, "set twice", f)
	f.Set(12)
	f.Clear(5) // not in the set
	checkCount(t, "clear of a piece not in the set", f)
	alias := f
	alias.Set(0)
	checkCount(t, "set through a copy", f)
	if f.Count() != 3 {
		t.Fatalf("a copy's Set is not seen: Count %d, want 3", f.Count())
	}
	c := f.Clone()
	c.Clear(0)
	checkCount(t, "clone", c)
	checkCount(t, "original after the clone changed", f)
	if f.Count() != 3 || c.Count() != 2 {
		t.Fatalf("clone shares the set: %d and %d", f.Count(), c.Count())
	}
	f.SetAll()
	checkCount(t, "set all", f)
	f.SetAll()
	f.Clear(12)
	f.Clear(12)
	checkCount(t, "clear twice after set all", f)
	g, err := FromBytes(f.Bytes(), 13)
	if err != nil {
		t.Fatal(err)
	}
	checkCount(t, "from bytes", g)
	for _, i := range []int{-1, 13} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Set(%d) of 13 did not panic", i)
				}
			}()
			f.Set(i)
		}()
	}
	checkCount(t, "after refused sets", f)
}

// FuzzCount applies a random series of mutations to a bitfield and its
// clone and checks the cached counts against a naive count after each.
func FuzzCount(f *testing.F) {
	f.Add(uint16(10), []byte{0, 3, 1, 3, 2, 0, 4, 9})
	f.Add(uint16(64), []byte{2, 0, 1, 63, 1, 63, 5, 0, 0, 7})
	f.Add(uint16(1), []byte{3, 0, 4, 0})
	f.Fuzz(func(t *testing.T, n uint16, ops []byte) {
		size := int(n % 1000)
		b := New(size)
		c := b.Clone()
		for k := 0; k+1 < len(ops); k += 2 {
			op, arg := ops[k]%6, int(ops[k+1])
			i := 0
			if size > 0 {
				i = arg * 7 % size
			}
			switch {
			case op == 0 && size > 0:
				b.Set(i)
			case op == 1 && size > 0:
				b.Clear(i)
			case op == 2:
				b.SetAll()
			case op == 3 && size > 0:
				c.Set(i)
			case op == 4:
				c = b.Clone()
			case op == 5:
				g, err := FromBytes(b.Bytes(), size)
				if err != nil {
					t.Fatal(err)
				}
				b = g
			}
			checkCount(t, "b", b)
			checkCount(t, "c", c)
		}
	})
}

// FuzzFromBytes checks that any wire bitfield for any piece count is
// refused, or accepted with the length and count its bytes say and no
// spare bits.
func FuzzFromBytes(f *testing.F) {
	f.Add([]byte{0xff, 0x80}, 9)
	f.Add([]byte{0xff, 0x40}, 9)
	f.Add([]byte{}, 0)
	f.Add([]byte{}, -1)
	f.Add([]byte{0x01}, 8)
	f.Add([]byte{0xff}, 1<<30)
	f.Fuzz(func(t *testing.T, p []byte, n int) {
		b, err := FromBytes(p, n)
		if err != nil {
			return
		}
		if b.Len() != n || n < 0 || len(b.Bytes()) != len(p) {
			t.Fatalf("FromBytes(%x, %d): length %d", p, n, b.Len())
		}
		c := 0
		for i := range n {
			if b.Has(i) {
				c++
			}
		}
		if c != b.Count() {
			t.Fatalf("FromBytes(%x, %d): count %d, %d bits set", p, n, b.Count(), c)
		}
	})
}
