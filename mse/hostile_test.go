package mse

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// halfHandshakes is how many stalled handshakes TestManyHalfHandshakes
// holds at once.
const halfHandshakes = 1000

// maxHalfHandshakeBytes bounds the memory (heap and goroutine stack) one
// stalled handshake may hold, both ends of its loopback connection
// included: the read buffer is 1 KiB, the keys and ciphers a few more.
const maxHalfHandshakeBytes = 48 << 10

// TestManyHalfHandshakes opens 1,000 connections that send a public key
// and part of a pad and then stall, so that 1,000 Accepts wait at once for
// the synchronisation point, and measures the memory they hold. Cancelling
// the context ends them all.
func TestManyHalfHandshakes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	before := memInUse()
	var wg sync.WaitGroup
	errc := make(chan error, halfHandshakes)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range halfHandshakes {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, err := Accept(ctx, c, lookupOf(testSKey), RC4, nil)
				errc <- err
			}()
		}
	}()
	clients := make([]net.Conn, 0, halfHandshakes)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	start := randBytes(20, keyLen+100)
	for range halfHandshakes {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		if _, err := c.Write(start); err != nil {
			t.Fatal(err)
		}
	}
	// Each acceptor has answered with its key: it now waits for req1.
	yb := make([]byte, keyLen)
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, yb); err != nil {
			t.Fatalf("waiting for an acceptor's key: %v", err)
		}
	}
	per := (memInUse() - before) / halfHandshakes
	t.Logf("%d stalled handshakes: %d bytes each (heap and stacks, both ends)", halfHandshakes, per)
	if per > maxHalfHandshakeBytes {
		t.Errorf("a stalled handshake holds %d bytes, more than %d", per, maxHalfHandshakeBytes)
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a stalled Accept ended with %v, want context.Canceled", err)
		}
	}
}

// memInUse is the heap and goroutine stack memory in use after a
// collection.
func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
