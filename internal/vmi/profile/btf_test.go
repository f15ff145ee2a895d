package profile

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// testSpec builds a small BTF with the shapes that matter: self-referencing
// list_head, a typedef'd anonymous struct (kuid_t), members inside nested
// anonymous unions and structs, an array of structs, and a bitfield.
func testSpec(t *testing.T) *btf.Spec {
	t.Helper()
	u32 := &btf.Int{Name: "unsigned int", Size: 4, Encoding: btf.Unsigned}
	u64 := &btf.Int{Name: "long unsigned int", Size: 8, Encoding: btf.Unsigned}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
	listHead := &btf.Struct{Name: "list_head", Size: 16}
	lhPtr := &btf.Pointer{Target: listHead}
	listHead.Members = []btf.Member{{Name: "next", Type: lhPtr}, {Name: "prev", Type: lhPtr, Offset: 64}}
	kuid := &btf.Typedef{Name: "kuid_t", Type: &btf.Struct{Size: 4, Members: []btf.Member{{Name: "val", Type: u32}}}}
	cred := &btf.Struct{Name: "cred", Size: 16, Members: []btf.Member{
		{Name: "usage", Type: u32},
		{Name: "uid", Type: kuid, Offset: 64},
		{Name: "gid", Type: kuid, Offset: 96},
	}}
	mem := &btf.Struct{Name: "module_memory", Size: 16, Members: []btf.Member{
		{Name: "base", Type: &btf.Pointer{Target: &btf.Void{}}},
		{Name: "size", Type: u32, Offset: 64},
	}}
	task := &btf.Struct{Name: "task_struct", Size: 256, Members: []btf.Member{
		{Name: "__state", Type: &btf.Volatile{Type: u32}},
		{Name: "flags", Type: u32, Offset: 3, BitfieldSize: 2},
		{Type: &btf.Union{Size: 16, Members: []btf.Member{ // anonymous union at byte 16
			{Name: "rcu_users", Type: u32},
			{Type: &btf.Struct{Size: 16, Members: []btf.Member{ // anonymous struct inside it
				{Name: "pad", Type: u64},
				{Name: "pid", Type: u32, Offset: 64},
			}}},
		}}, Offset: 128},
		{Name: "tasks", Type: listHead, Offset: 256},
		{Name: "comm", Type: &btf.Array{Index: u32, Type: char, Nelems: 16}, Offset: 384},
		{Name: "mem", Type: &btf.Array{Index: u32, Type: mem, Nelems: 3}, Offset: 512},
		{Name: "real_cred", Type: &btf.Pointer{Target: &btf.Const{Type: cred}}, Offset: 1536},
	}}
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []btf.Type{task, cred, listHead} {
		if _, err := b.Add(typ); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestMember(t *testing.T) {
	spec := testSpec(t)
	for _, c := range []struct {
		typ, path string
		off, size uint64
	}{
		{"list_head", "prev", 8, 8},
		{"task_struct", "__state", 0, 4},
		{"task_struct", "rcu_users", 16, 4}, // member of an anonymous union
		{"task_struct", "pid", 24, 4},       // anonymous union -> anonymous struct
		{"task_struct", "tasks", 32, 16},
		{"task_struct", "tasks.prev", 40, 8},
		{"task_struct", "comm", 48, 16},
		{"task_struct", "mem", 64, 48},
		{"task_struct", "mem[0].base", 64, 8},
		{"task_struct", "mem[2].size", 64 + 32 + 8, 4},
		{"cred", "uid", 8, 4},
		{"cred", "uid.val", 8, 4}, // through the kuid_t typedef
		{"cred", "gid.val", 12, 4},
	} {
		f, err := Member(spec, c.typ, c.path)
		if err != nil {
			t.Errorf("%s.%s: %v", c.typ, c.path, err)
			continue
		}
		if f.Offset != c.off || f.Size != c.size {
			t.Errorf("%s.%s = offset %d size %d, want %d %d", c.typ, c.path, f.Offset, f.Size, c.off, c.size)
		}
	}
	if off, err := OffsetPath(spec, "task_struct.tasks.next"); err != nil || off != 32 {
		t.Errorf("OffsetPath = %d, %v", off, err)
	}
	if n, err := Sizeof(spec, "task_struct"); err != nil || n != 256 {
		t.Errorf("Sizeof(task_struct) = %d, %v", n, err)
	}
}

func TestMemberErrors(t *testing.T) {
	spec := testSpec(t)
	for _, c := range []struct{ typ, path, want string }{
		{"no_such_type", "x", "no type"},
		{"task_struct", "nope", "no member"},
		{"task_struct", "flags", "bitfield"},
		{"task_struct", "comm.x", "not a struct"},
		{"task_struct", "mem[3]", "out of range"},
		{"task_struct", "tasks[0]", "not an array"},
		{"task_struct", "mem[x]", "malformed index"},
		{"task_struct", "mem[1", "malformed index"},
		{"task_struct", "", "no member"},
		{"task_struct", "real_cred.uid", "not a struct"}, // pointers are not followed
		{"unsigned int", "x", "not a struct"},
	} {
		_, err := Member(spec, c.typ, c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Member(%s, %q) = %v, want an error mentioning %q", c.typ, c.path, err, c.want)
		}
	}
	if _, err := OffsetPath(spec, "task_struct"); err == nil {
		t.Error("OffsetPath without a member succeeded")
	}
}
