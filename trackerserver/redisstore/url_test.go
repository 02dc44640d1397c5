package redisstore

import (
	"slices"
	"strings"
	"testing"
)

func TestParseURLs(t *testing.T) {
	env := func(string) string { return "from-env" }
	for _, tc := range []struct {
		urls []string
		want Options
		err  string
	}{
		{urls: []string{"redis://h:7000/3"}, want: Options{Addrs: []string{"h:7000"}, DB: 3, Password: "from-env"}},
		{urls: []string{"redis://h"}, want: Options{Addrs: []string{"h:6379"}, Password: "from-env"}},
		{urls: []string{"rediss://u:pw@h:1"}, want: Options{Addrs: []string{"h:1"}, TLS: true, Username: "u", Password: "pw"}},
		{urls: []string{"redis+cluster://[::1]:7000"}, want: Options{Addrs: []string{"[::1]:7000"}, Cluster: true, Password: "from-env"}},
		{urls: []string{"redis://a:1", "redis://b:2"}, want: Options{Addrs: []string{"a:1", "b:2"}, Cluster: true, Password: "from-env"}},
		{urls: []string{"redis+cluster://a:1/2"}, err: "only database 0"},
		{urls: []string{"http://a"}, err: "scheme"},
		{urls: []string{"redis://a:1", "rediss://b:2"}, err: "mixes TLS"},
		{urls: []string{"redis://a:99999"}, err: "bad port"},
		{urls: []string{"redis://a/x"}, err: "database number"},
		{urls: []string{"redis://a?timeout=1"}, err: "query"},
		{urls: []string{"redis:///0"}, err: "no host"},
		{urls: nil, err: "no store URL"},
	} {
		got, err := ParseURLs(tc.urls, env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one with %q", tc.urls, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.urls, err)
			continue
		}
		if !slices.Equal(got.Addrs, tc.want.Addrs) || got.Cluster != tc.want.Cluster || got.TLS != tc.want.TLS ||
			got.DB != tc.want.DB || got.Username != tc.want.Username || got.Password != tc.want.Password {
			t.Errorf("%v: %+v, want %+v", tc.urls, got, tc.want)
		}
	}
}

// FuzzParseURLs: any text is a clear error or a usable address list, and
// a password given in the URL never leaks into an error message.
func FuzzParseURLs(f *testing.F) {
	for _, s := range []string{"redis://h:1/2", "rediss+cluster://u:secret@h", "redis://[::1", "redis://h:0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseURLs([]string{s}, nil)
		if err != nil {
			if strings.Contains(s, ":hunter2@") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if len(o.Addrs) != 1 || o.Addrs[0] == "" {
			t.Fatalf("%q: addresses %v", s, o.Addrs)
		}
	})
}
