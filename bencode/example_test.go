package bencode_test

import (
	"crypto/sha1"
	"fmt"
	"io"
	"strings"

	"github.com/sowerbt/sower/bencode"
)

// The info-hash must be computed over the info dict exactly as it appears
// in the file. Capturing it as a RawMessage keeps those bytes, even when an
// old creator wrote the keys out of order.
func ExampleRawMessage() {
	file := []byte("d8:announce3:url4:infod4:name1:a6:lengthi5e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee")
	var mi struct {
		Announce string             `bencode:"announce"`
		Info     bencode.RawMessage `bencode:"info"`
	}
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(file, &mi); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%x\n", sha1.Sum(mi.Info))
	// The strict default refuses the same file.
	fmt.Println(bencode.Unmarshal(file, &mi))
	// Output:
	// e63fd68b74c6ba345a2343bf975fc5dd98b2db69
	// bencode: dict key "length" is not sorted after "name" at offset 32
}

func ExampleMarshal() {
	type file struct {
		Length int64    `bencode:"length"`
		Path   []string `bencode:"path"`
	}
	b, err := bencode.Marshal(map[string]any{
		"name":  "dir",
		"files": []file{{Length: 3, Path: []string{"a", "b.txt"}}},
	})
	fmt.Printf("%s %v\n", b, err)
	// Output: d5:filesld6:lengthi3e4:pathl1:a5:b.txteee4:name3:dire <nil>
}

func ExampleDecoder() {
	dec := bencode.NewDecoder(strings.NewReader("d1:ai1eei2e3:end"))
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%v ", v)
	}
	// Output: map[a:1] 2 end
}
