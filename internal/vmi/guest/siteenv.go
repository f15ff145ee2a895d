package guest

import (
	"bytes"
	"fmt"
	"time"
)

// SiteEnv is what some patch sites' legal encodings depend on at run time,
// beyond the image: the code ftrace may call from a traced function and
// from its caller, and the functions static-call keys hold. A nil SiteEnv
// (or a nil field) falls back to the looser rule of each kind, which the
// finding's absence then rests on: an ftrace site may call any kernel
// address outside the image, a static-call site any kernel address.
type SiteEnv struct {
	k *Kernel
	// Trampolines: runtime addresses a traced function's ftrace site may
	// call besides the image's ftrace_caller and ftrace_regs_caller: the
	// trampoline of every registered ftrace_ops and every direct-call
	// target (BPF trampolines).
	Trampolines map[uint64]bool
	// OpsFuncs: what ftrace_caller's own call sites (ftrace_call,
	// ftrace_regs_call) may call outside kernel text: the registered
	// ftrace_ops' functions.
	OpsFuncs map[uint64]bool
	// KnownCode says whether a runtime address lies in code a static call
	// may hold: kernel text or a known module's text.
	KnownCode func(uint64) bool
}

// FtraceTargets bounds the ftrace walk below.
const (
	maxFtraceTargets = 1 << 14
	ftraceWalkSteps  = 1 << 16
	ftraceWalkTime   = 200 * time.Millisecond
)

// NewSiteEnv reads the registered ftrace_ops (their trampolines and
// functions) and the direct-call targets (direct_functions). A kernel
// whose profile lacks the offsets gets an env without them (and the looser
// ftrace rule); a walk that fails is an error.
func (k *Kernel) NewSiteEnv(knownCode func(uint64) bool) (*SiteEnv, error) {
	env := &SiteEnv{k: k, KnownCode: knownCode}
	head, err1 := k.Sym("ftrace_ops_list")
	end, err2 := k.Sym("ftrace_list_end")
	off, err3 := k.offsets("ftrace_ops.func", "ftrace_ops.next", "ftrace_ops.trampoline")
	if err1 != nil || err2 != nil || err3 != nil {
		return env, nil
	}
	b := NewBudget(ftraceWalkSteps, ftraceWalkTime)
	tramps, funcs := map[uint64]bool{}, map[uint64]bool{}
	ops, err := k.U64(head)
	seen := map[uint64]bool{}
	for err == nil && ops != end {
		if err = b.Take(); err != nil {
			break
		}
		if ops == 0 || seen[ops] || len(seen) >= maxFtraceTargets {
			return env, fmt.Errorf("ftrace_ops_list is broken at %#x", ops)
		}
		seen[ops] = true
		var fn, tr uint64
		if fn, err = k.U64(ops + off["ftrace_ops.func"]); err != nil {
			break
		}
		if tr, err = k.U64(ops + off["ftrace_ops.trampoline"]); err != nil {
			break
		}
		funcs[fn] = true
		if tr != 0 {
			tramps[tr] = true
		}
		ops, err = k.U64(ops + off["ftrace_ops.next"])
	}
	if err != nil {
		return env, fmt.Errorf("ftrace_ops_list: %w", err)
	}
	if err := k.directCalls(tramps, b); err != nil {
		return env, err
	}
	env.Trampolines, env.OpsFuncs = tramps, funcs
	return env, nil
}

// directCalls adds every direct-call target of the direct_functions hash
// (struct ftrace_func_entry: ip, direct). A kernel without direct calls
// in its profile adds nothing.
func (k *Kernel) directCalls(out map[uint64]bool, b *Budget) error {
	sym, err1 := k.Sym("direct_functions")
	off, err2 := k.offsets("ftrace_hash.size_bits", "ftrace_hash.buckets", "ftrace_func_entry.hlist", "ftrace_func_entry.direct")
	if err1 != nil || err2 != nil {
		return nil
	}
	hash, err := k.U64(sym)
	if err != nil || hash == 0 {
		return err
	}
	bits, err1 := k.U64(hash + off["ftrace_hash.size_bits"])
	buckets, err2 := k.U64(hash + off["ftrace_hash.buckets"])
	if err1 != nil || err2 != nil || bits > maxFtraceHashLog {
		return fmt.Errorf("direct_functions: a hash of %d bits at %#x", bits, hash)
	}
	if buckets == 0 {
		return nil
	}
	seen := map[uint64]bool{}
	for i := uint64(0); i < 1<<bits; i++ {
		first, err := k.U64(buckets + 8*i)
		if err != nil {
			return fmt.Errorf("direct_functions bucket %d: %w", i, err)
		}
		err = k.walkHlist(first, "direct_functions", b, seen, func(node uint64) error {
			d, err := k.U64(node - off["ftrace_func_entry.hlist"] + off["ftrace_func_entry.direct"])
			if err == nil && d != 0 && len(out) < maxFtraceTargets {
				out[d] = true
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Remember adds an earlier env's ftrace targets: a site may still call a
// trampoline for a moment after its ops left the list (ftrace_shutdown
// unlinks the ops, then rewrites the sites, then frees the trampoline).
func (env *SiteEnv) Remember(tramps, funcs map[uint64]bool) {
	if env.Trampolines == nil || env.OpsFuncs == nil {
		return
	}
	for a := range tramps {
		env.Trampolines[a] = true
	}
	for a := range funcs {
		env.OpsFuncs[a] = true
	}
}

// staticCallKey flags (low bits of a static_call_site's key field).
const (
	staticCallTail  = 1
	staticCallFlags = 3
)

// legalStaticCall judges a static-call site (an inline site or a key's
// trampoline) against the function its key holds now, as
// __static_call_transform writes it: a call (or, for a tail site and a
// trampoline, a jump) to the function; for no function a NOP (or a return);
// __static_call_return0 inline as "xor %eax,%eax". key is the key's runtime
// address with the site's flags; 0 when unknown.
func (img *ImageText) legalStaticCall(at uint64, got []byte, slide uint64, env *SiteEnv, key uint64) string {
	callOrJmp := len(got) == 5 && (got[0] == 0xe8 || got[0] == 0xe9)
	if env == nil || key == 0 {
		if bytes.Equal(got, nopsCanon[5]) || bytes.Equal(got, retInt3) || bytes.Equal(got, xor5rax) || callOrJmp && kernelHalf(rel32Target(at, got)) {
			return ""
		}
		return "not a static-call encoding"
	}
	f, err := env.k.U64(key &^ staticCallFlags)
	if err != nil {
		return fmt.Sprintf("its key at %#x is unreadable", key&^staticCallFlags)
	}
	tail := key&staticCallTail != 0
	ok := false
	switch {
	case f == 0 && !tail:
		ok = bytes.Equal(got, nopsCanon[5])
	case f == 0:
		ok = bytes.Equal(got, retInt3) || callOrJmp && got[0] == 0xe9 && img.returnThunks[rel32Target(at, got)-slide]
	case !tail && img.return0 != 0 && f == img.return0+slide:
		ok = bytes.Equal(got, xor5rax)
	case !tail:
		ok = callOrJmp && got[0] == 0xe8 && rel32Target(at, got) == f
	default:
		ok = callOrJmp && got[0] == 0xe9 && rel32Target(at, got) == f
	}
	if !ok {
		return fmt.Sprintf("not the encoding of its key's function %#x", f)
	}
	if f != 0 && !img.inText(f-slide) && env.KnownCode != nil && !env.KnownCode(f) {
		return fmt.Sprintf("its key holds %#x, outside the kernel and its known modules", f)
	}
	return ""
}
