package bencode

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// typeCache memoizes the reflection work done per Go type: struct field
// lists and the compiled encoder and decoder functions. It is the package's
// only package-level state. It is safe for concurrent use (sync.Map), only
// ever gains entries, and holds nothing derived from the data being
// encoded or decoded, so it cannot leak state between calls.
var typeCache struct {
	fields   sync.Map // reflect.Type -> []field
	decoders sync.Map // reflect.Type -> decoderFunc
	encoders sync.Map // reflect.Type -> encoderFunc
}

// field describes one dict key of a struct type.
type field struct {
	name      string       // dict key
	prefix    []byte       // the key already bencoded, written before the value
	index     []int        // path through embedded structs, as for reflect.Value.FieldByIndex
	typ       reflect.Type // field type
	omitEmpty bool
	tagged    bool // name came from a tag; wins conflicts at equal depth
}

// cachedFields returns the fields of struct type t in the order they must
// be encoded: sorted by key as raw bytes.
func cachedFields(t reflect.Type) []field {
	if f, ok := typeCache.fields.Load(t); ok {
		return f.([]field)
	}
	f, _ := typeCache.fields.LoadOrStore(t, typeFields(t))
	return f.([]field)
}

// parseTag splits a `bencode:"name,opt,..."` tag.
func parseTag(tag string) (name string, omitEmpty bool) {
	name, opts, _ := strings.Cut(tag, ",")
	for opts != "" {
		var opt string
		opt, opts, _ = strings.Cut(opts, ",")
		if opt == "omitempty" {
			omitEmpty = true
		}
	}
	return name, omitEmpty
}

// typeFields lists the keys of struct type t following Go's rules for
// promoted fields: a field of an embedded struct is promoted unless a
// shallower field has the same key; among fields at the same depth a
// tagged one wins, and if that still leaves several, the key is dropped
// as ambiguous.
func typeFields(t reflect.Type) []field {
	type pending struct {
		typ   reflect.Type
		index []int
	}
	var all []field
	visited := map[reflect.Type]bool{}
	level := []pending{{typ: t}}
	for len(level) > 0 {
		var next []pending
		// Count how often each embedded struct type occurs at this level;
		// its promoted fields are ambiguous if more than once.
		count := map[reflect.Type]int{}
		for _, p := range level {
			count[p.typ]++
		}
		for _, p := range level {
			if visited[p.typ] {
				continue
			}
			visited[p.typ] = true
			for i := range p.typ.NumField() {
				sf := p.typ.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("bencode")
				if tag == "-" {
					continue
				}
				name, omitEmpty := parseTag(tag)
				index := append(slices.Clip(p.index), i)
				if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					next = append(next, pending{typ: ft, index: index})
					continue
				}
				if !sf.IsExported() {
					// An unexported embedded struct with a tag name:
					// its value cannot be read or set.
					continue
				}
				tagged := name != ""
				if name == "" {
					name = sf.Name
				}
				f := field{name: name, index: index, typ: sf.Type, omitEmpty: omitEmpty, tagged: tagged}
				all = append(all, f)
				if count[p.typ] > 1 {
					// The same struct embedded twice at one level: add a
					// twin so the conflict resolution below drops it.
					all = append(all, f)
				}
			}
		}
		level = next
	}

	slices.SortStableFunc(all, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []field
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		if f, ok := dominant(all[i:j]); ok {
			f.prefix = strconv.AppendInt(nil, int64(len(f.name)), 10)
			f.prefix = append(f.prefix, ':')
			f.prefix = append(f.prefix, f.name...)
			out = append(out, f)
		}
		i = j
	}
	return out
}

// dominant picks the field that owns a key among fields sorted by depth and
// then tagged-first, or reports that the key is ambiguous.
func dominant(fs []field) (field, bool) {
	if len(fs) > 1 && len(fs[0].index) == len(fs[1].index) && fs[0].tagged == fs[1].tagged {
		return field{}, false
	}
	return fs[0], true
}
