package mse

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestPreferPlaintext: an acceptor that prefers plaintext takes the
// plaintext payload when both are offered, and still RC4 when that is all
// the initiator offers.
func TestPreferPlaintext(t *testing.T) {
	skey := [20]byte{7}
	lookup := func(req2 [20]byte) ([20]byte, bool) { return skey, req2 == Req2(skey) }
	for _, tc := range []struct {
		offer, want Method
	}{
		{RC4 | Plaintext, Plaintext},
		{RC4, RC4},
		{Plaintext, Plaintext},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got := make(chan Method, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- 0
				return
			}
			defer c.Close()
			mc, err := Accept(ctx, c, lookup, RC4|Plaintext, &Options{PreferPlaintext: true})
			if err != nil {
				got <- 0
				return
			}
			got <- mc.Method()
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ic, err := Initiate(ctx, c, skey, tc.offer, nil, nil)
		if err != nil {
			t.Fatalf("offer %v: %v", tc.offer, err)
		}
		if ic.Method() != tc.want {
			t.Errorf("offer %v: initiator got %v, want %v", tc.offer, ic.Method(), tc.want)
		}
		if m := <-got; m != tc.want {
			t.Errorf("offer %v: acceptor chose %v, want %v", tc.offer, m, tc.want)
		}
		c.Close()
		ln.Close()
		cancel()
	}
}
