//go:build !unix

package utp

func isMsgSize(error) bool { return false }
