package bencode

import (
	"reflect"
	"sync"
	"testing"
)

// tree and forest are only used here, so their encoders and decoders are
// built while the goroutines below race to use them.
type tree struct {
	Label  string           `bencode:"label"`
	Kids   []*tree          `bencode:"kids,omitempty"`
	Forest map[string]*tree `bencode:"forest,omitempty"`
}

func TestConcurrentTypeCache(t *testing.T) {
	in := tree{Label: "root", Kids: []*tree{{Label: "a"}, {Label: "b", Forest: map[string]*tree{"x": {Label: "c"}}}}}
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range 50 {
				b, err := Marshal(&in)
				if err != nil {
					errs <- err
					return
				}
				var out tree
				if err := Unmarshal(b, &out); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(in, out) {
					errs <- &UnsupportedValueError{Msg: "round trip mismatch"}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
