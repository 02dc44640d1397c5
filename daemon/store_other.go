//go:build !linux

package daemon

// dropMapped does nothing here: the resident-set accounting this serves
// is Linux's, and other systems reclaim clean file pages on their own.
func dropMapped(addr uintptr, n int64) error { return nil }
