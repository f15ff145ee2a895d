package guest

import (
	"encoding/binary"
	"strings"
	"testing"
)

func call5(op byte, at, target uint64) []byte {
	b := []byte{op, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(int64(target)-int64(at+5))))
	return b
}

// Static-call sites are judged by the function their key holds now, and
// ftrace sites by the registered trampolines and ops functions; without
// an env the looser rules of before hold.
func TestSiteEnvRules(t *testing.T) {
	const text, etext = 0xffffffff81000000, 0xffffffff82000000
	phys := make([]byte, 1<<16)
	k := testKernel(phys, nil)
	keyPA := uint64(0x2000)
	key := pageOffset + keyPA
	fn, other, ret0, thunk := uint64(text+0x1000), uint64(text+0x2000), uint64(text+0x3000), uint64(text+0x4000)
	modFn := uint64(0xffffffffc0001000)
	img := &ImageText{Ranges: []ImageRange{{Name: "text", Start: text, End: etext}}, text: text, end: etext + 0x1000000,
		return0: ret0, returnThunks: map[uint64]bool{thunk: true}, ftraceTrampoline: map[uint64]bool{text + 0x5000: true}}
	known := false
	env := &SiteEnv{k: k, KnownCode: func(uint64) bool { return known }}
	at := uint64(text + 0x100)
	setFunc := func(f uint64) { binary.LittleEndian.PutUint64(phys[keyPA:], f) }
	sc := func(got []byte, tail bool) string {
		kk := key
		if tail {
			kk |= staticCallTail
		}
		return img.legal(PatchSite{Addr: at, Len: 5, Kind: SiteStaticCall}, at, got, []byte{0xe8, 9, 9, 9, 9}, 0, env, kk)
	}
	for _, c := range []struct {
		name  string
		f     uint64
		got   []byte
		tail  bool
		legal bool
	}{
		{"call to the key's function", fn, call5(0xe8, at, fn), false, true},
		{"call elsewhere in text", fn, call5(0xe8, at, other), false, false},
		{"NOP while the key holds a function", fn, nopsCanon[5], false, false},
		{"NOP for no function", 0, nopsCanon[5], false, true},
		{"call for no function", 0, call5(0xe8, at, fn), false, false},
		{"tail jump", fn, call5(0xe9, at, fn), true, true},
		{"call at a tail site", fn, call5(0xe8, at, fn), true, false},
		{"tail return", 0, retInt3, true, true},
		{"tail return thunk", 0, call5(0xe9, at, thunk), true, true},
		{"return0 inline", ret0, xor5rax, false, true},
		{"the image's own bytes", fn, []byte{0xe8, 9, 9, 9, 9}, false, true},
		{"a module function nobody knows", modFn, call5(0xe8, at, modFn), false, false},
		{"kernel data, not text", etext + 0x100, call5(0xe8, at, etext+0x100), false, false},
	} {
		setFunc(c.f)
		if why := sc(c.got, c.tail); (why == "") != c.legal {
			t.Errorf("%s: %q", c.name, why)
		}
	}
	known = true
	setFunc(modFn)
	if why := sc(call5(0xe8, at, modFn), false); why != "" {
		t.Errorf("a known module's function: %q", why)
	}
	known = false
	if why := sc(call5(0xe8, at, modFn), false); !strings.Contains(why, "outside") {
		t.Errorf("an unknown module's function: %q", why)
	}
	// Without an env: any kernel-half call is a static-call encoding.
	if why := img.legal(PatchSite{Addr: at, Len: 5, Kind: SiteStaticCall}, at, call5(0xe8, at, modFn), nil, 0, nil, 0); why != "" {
		t.Errorf("loose rule: %q", why)
	}

	// ftrace sites: a call to the image's caller, a registered trampoline
	// or (loose) anything outside the image.
	tramp, rogue := uint64(0xffffffffc0100000), uint64(0xffffffffc0200000)
	ft := func(target uint64, env *SiteEnv) string {
		return img.legal(PatchSite{Addr: at, Len: 5, Kind: SiteFtrace}, at, call5(0xe8, at, target), nopsCanon[5], 0, env, 0)
	}
	env.Trampolines, env.OpsFuncs = map[uint64]bool{tramp: true}, map[uint64]bool{rogue + 0x10: true}
	if ft(text+0x5000, env) != "" || ft(tramp, env) != "" || ft(rogue, env) == "" || ft(fn, env) == "" {
		t.Errorf("ftrace: image caller %q, trampoline %q, rogue %q, text %q", ft(text+0x5000, env), ft(tramp, env), ft(rogue, env), ft(fn, env))
	}
	if ft(rogue, nil) != "" {
		t.Error("ftrace without an env: a call outside the image was refused")
	}
	fc := func(target uint64) string {
		return img.legal(PatchSite{Addr: at, Len: 5, Kind: SiteFtraceCall}, at, call5(0xe8, at, target), nopsCanon[5], 0, env, 0)
	}
	if fc(fn) != "" || fc(rogue+0x10) != "" || fc(rogue) == "" {
		t.Errorf("ftrace_call: text %q, ops func %q, rogue %q", fc(fn), fc(rogue+0x10), fc(rogue))
	}
}

// FuzzSiteEnv walks the ftrace ops list and the direct-call hash over
// random memory: errors are fine, panics and hangs are not, and the sets
// stay bounded.
func FuzzSiteEnv(f *testing.F) {
	seed := make([]byte, 1<<13)
	binary.LittleEndian.PutUint64(seed[0x100:], pageOffset+0x200) // ftrace_ops_list → ops
	binary.LittleEndian.PutUint64(seed[0x208:], pageOffset+0x300) // ops.next → ftrace_list_end
	binary.LittleEndian.PutUint64(seed[0x210:], 0xffffffffc0001000)
	f.Add(seed, uint64(0x100), uint64(0x300), uint64(0x400))
	f.Fuzz(func(t *testing.T, b []byte, list, end, direct uint64) {
		if len(b) < 4096 || len(b) > 1<<18 {
			return
		}
		n := uint64(len(b))
		k := testKernel(b, map[string]uint64{"ftrace_ops_list": pageOffset + list%n, "ftrace_list_end": pageOffset + end%n,
			"direct_functions": pageOffset + direct%n})
		k.L.Offsets = map[string]uint64{"ftrace_ops.func": 0, "ftrace_ops.next": 8, "ftrace_ops.trampoline": 16,
			"ftrace_hash.size_bits": 0, "ftrace_hash.buckets": 8, "ftrace_func_entry.hlist": 0, "ftrace_func_entry.direct": 16}
		env, _ := k.NewSiteEnv(nil)
		if env == nil || len(env.Trampolines) > maxFtraceTargets || len(env.OpsFuncs) > maxFtraceTargets {
			t.Fatalf("env %v", env)
		}
	})
}
