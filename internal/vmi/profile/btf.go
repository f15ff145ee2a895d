package profile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// maxAnonDepth bounds the search through nested anonymous structs and
// unions; real kernel types nest three or four deep.
const maxAnonDepth = 16

// Field is a resolved structure member.
type Field struct {
	Offset uint64   // bytes from the start of the outer type
	Size   uint64   // bytes
	Type   btf.Type // the member's type, typedefs kept
}

// Offset returns the byte offset of member inside the struct or union named
// typeName. member may be a path: "mkobj.kobj.entry", and array elements can
// be indexed: "mem[1].base".
func Offset(spec *btf.Spec, typeName, member string) (uint64, error) {
	f, err := Member(spec, typeName, member)
	return f.Offset, err
}

// OffsetPath is Offset with the type as the first path element:
// OffsetPath(spec, "module.mkobj.kobj.entry").
func OffsetPath(spec *btf.Spec, path string) (uint64, error) {
	typ, member, ok := strings.Cut(path, ".")
	if !ok {
		return 0, fmt.Errorf("profile: %q is not of the form type.member", path)
	}
	return Offset(spec, typ, member)
}

// Sizeof returns the size of the struct or union named typeName.
func Sizeof(spec *btf.Spec, typeName string) (uint64, error) {
	t, err := composite(spec, typeName)
	if err != nil {
		return 0, err
	}
	return uint64(t.size), nil
}

// Member resolves a member path inside the struct or union typeName.
//
// BTF member offsets are in bits and are relative to the immediately
// enclosing type. Members of anonymous structs and unions (as in
// `union { refcount_t usage; ... };`) are found by searching those
// recursively and adding their offsets, which is how C lets code name them.
func Member(spec *btf.Spec, typeName, path string) (Field, error) {
	outer, err := composite(spec, typeName)
	if err != nil {
		return Field{}, err
	}
	var (
		bits  uint64
		typ   btf.Type
		where = typeName
		cur   = outer
	)
	for _, part := range strings.Split(path, ".") {
		name, index, hasIndex, err := splitIndex(part)
		if err != nil {
			return Field{}, fmt.Errorf("profile: %s.%s: %w", typeName, path, err)
		}
		if cur.members == nil {
			return Field{}, fmt.Errorf("profile: %s is not a struct or union, cannot find %q in it", where, name)
		}
		m, off, ok := findMember(cur.members, name, 0)
		if !ok {
			return Field{}, fmt.Errorf("profile: %s has no member %q", where, name)
		}
		if m.BitfieldSize != 0 || (uint64(m.Offset)+off)%8 != 0 {
			return Field{}, fmt.Errorf("profile: %s.%s is a bitfield, it has no byte offset", where, name)
		}
		bits += uint64(m.Offset) + off
		typ = m.Type
		where += "." + part
		if hasIndex {
			arr, ok := btf.UnderlyingType(typ).(*btf.Array)
			if !ok {
				return Field{}, fmt.Errorf("profile: %s is indexed but not an array", where)
			}
			if uint64(index) >= uint64(arr.Nelems) {
				return Field{}, fmt.Errorf("profile: %s is out of range (%d elements)", where, arr.Nelems)
			}
			esz, err := btf.Sizeof(arr.Type)
			if err != nil {
				return Field{}, fmt.Errorf("profile: %s: element size: %w", where, err)
			}
			bits += 8 * uint64(index) * uint64(esz)
			typ = arr.Type
		}
		cur = asComposite(typ)
	}
	size, err := btf.Sizeof(typ)
	if err != nil {
		return Field{}, fmt.Errorf("profile: size of %s: %w", where, err)
	}
	return Field{Offset: bits / 8, Size: uint64(size), Type: typ}, nil
}

// findMember searches members, then anonymous struct/union members
// depth-first. It returns the member and the bit offset of its enclosing
// anonymous type relative to members' owner.
func findMember(members []btf.Member, name string, depth int) (btf.Member, uint64, bool) {
	if name == "" || depth > maxAnonDepth {
		return btf.Member{}, 0, false
	}
	for _, m := range members {
		if m.Name == name {
			return m, 0, true
		}
	}
	for _, m := range members {
		if m.Name != "" {
			continue
		}
		inner := asComposite(m.Type)
		if inner.members == nil {
			continue
		}
		if f, off, ok := findMember(inner.members, name, depth+1); ok {
			return f, uint64(m.Offset) + off, true
		}
	}
	return btf.Member{}, 0, false
}

type compositeInfo struct {
	members []btf.Member // nil when the type is not a struct or union
	size    uint32
}

func asComposite(t btf.Type) compositeInfo {
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		return compositeInfo{members: nonNil(c.Members), size: c.Size}
	case *btf.Union:
		return compositeInfo{members: nonNil(c.Members), size: c.Size}
	}
	return compositeInfo{}
}

func nonNil(m []btf.Member) []btf.Member {
	if m == nil {
		return []btf.Member{}
	}
	return m
}

// composite finds the struct or union called name. vmlinux BTF is
// deduplicated, so there is normally one; if there are several they must
// agree on the size, or the name is ambiguous.
func composite(spec *btf.Spec, name string) (compositeInfo, error) {
	types, err := spec.AnyTypesByName(name)
	if err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return compositeInfo{}, fmt.Errorf("profile: BTF has no type %q", name)
		}
		return compositeInfo{}, fmt.Errorf("profile: BTF lookup of %q: %w", name, err)
	}
	var found *compositeInfo
	for _, t := range types {
		switch t.(type) {
		case *btf.Struct, *btf.Union:
		default:
			continue
		}
		c := asComposite(t)
		if found != nil && found.size != c.size {
			return compositeInfo{}, fmt.Errorf("profile: BTF has several different types named %q", name)
		}
		found = &c
	}
	if found == nil {
		return compositeInfo{}, fmt.Errorf("profile: BTF type %q is not a struct or union", name)
	}
	return *found, nil
}

// splitIndex parses "name" or "name[3]".
func splitIndex(part string) (name string, index int, hasIndex bool, err error) {
	name, rest, ok := strings.Cut(part, "[")
	if !ok {
		return part, 0, false, nil
	}
	digits, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return "", 0, false, fmt.Errorf("malformed index in %q", part)
	}
	index, err = strconv.Atoi(digits)
	if err != nil || index < 0 {
		return "", 0, false, fmt.Errorf("malformed index in %q", part)
	}
	return name, index, true, nil
}
