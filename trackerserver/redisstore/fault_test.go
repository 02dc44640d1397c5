package redisstore

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/tracker"
)

// failFast announces n times at once over HTTP and UDP and requires every
// one to be refused with a failure reason (HTTP) or an error packet (UDP)
// within 2 s.
func failFast(t *testing.T, in *instance, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := in.httpURL
			if i%2 == 1 {
				u = in.udpURL
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := client().Announce(ctx, u, tracker.AnnounceRequest{InfoHash: [20]byte{5}, PeerID: peerID("f"), Port: uint16(8000 + i), Left: 1, NumWant: -1})
			var fe *tracker.FailureError
			switch {
			case !errors.As(err, &fe):
				errs <- errors.New(u + ": not a tracker failure: " + errString(err))
			case time.Since(t0) > 2*time.Second:
				errs <- errors.New(u + ": failure after " + time.Since(t0).String())
			case !strings.Contains(fe.Reason, "store unavailable"):
				errs <- errors.New(u + ": failure reason " + fe.Reason)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}

// TestRedisDown: with Redis stopped, and with Redis hung (SIGSTOP),
// announces get failure replies within 2 s and goroutines do not pile up;
// once it is back, announces succeed again within 5 s.
func TestRedisDown(t *testing.T) {
	rd := testpeers.StartRedis(t)
	c := newClock()
	a := startInstance(t, testConfig(c), "redis://"+rd.Addr)
	ih := [20]byte{4}
	announce(t, a.httpURL, ih, "before", 7200, 0, tracker.Started)
	base := runtime.NumGoroutine()

	rd.Stop()
	failFast(t, a, 20)
	recovers(t, a, rd.Start)

	if err := rd.Pause(); err != nil {
		t.Fatal(err)
	}
	failFast(t, a, 20)
	recovers(t, a, func() {
		if err := rd.Resume(); err != nil {
			t.Fatal(err)
		}
	})
	// Within a second the failed requests' goroutines are gone (the
	// client's connection goroutines may have been replaced, a few).
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base+10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the outages, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := metrics(t, a)
	if !strings.Contains(m, `sower_tracker_store_errors_total{op="announce"}`) || strings.Contains(m, `sower_tracker_store_errors_total{op="announce"} 0`) {
		t.Fatalf("metrics do not count the store errors:\n%s", grep(m, "sower_tracker_store"))
	}
	if !strings.Contains(m, `sower_tracker_store_seconds_count{op="announce"}`) {
		t.Fatalf("metrics lack the store latency:\n%s", grep(m, "sower_tracker_store"))
	}
}

// recovers runs back (which brings the store back) and requires announces
// to succeed within 5 s of it.
func recovers(t *testing.T, in *instance, back func()) {
	t.Helper()
	back()
	t0 := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client().Announce(ctx, in.httpURL, tracker.AnnounceRequest{InfoHash: [20]byte{4}, PeerID: peerID("after"), Port: 7201, Left: 1, NumWant: -1})
		cancel()
		if err == nil {
			return
		}
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("announces still fail 5s after the store came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metrics(t *testing.T, in *instance) string {
	t.Helper()
	resp, err := http.Get(in.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
