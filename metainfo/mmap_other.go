//go:build !linux

package metainfo

import (
	"errors"
	"os"
)

// mmapSupported: elsewhere every file is read into buffers.
const mmapSupported = false

func mapWindow(*os.File, int64, int) ([]byte, error) {
	return nil, errors.New("memory mapping not used on this platform")
}

func unmapWindow([]byte) {}
