package webseed

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if goroutines they started are still
// running once they all have ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
