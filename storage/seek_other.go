//go:build !linux

package storage

import "os"

// dataIn reports whether f may hold data in [off, off+n). Without a
// portable hole query it answers true unless the file ends before off.
func dataIn(f *os.File, off, n int64) bool {
	st, err := f.Stat()
	return err != nil || st.Size() > off
}
