package guest

import (
	"encoding/binary"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// The carving view: every task_struct lives in the task_struct slab cache
// (task_struct_cachep) for as long as the task exists, whatever lists it
// was taken off. SLUB keeps no list of full slabs (only with slab
// debugging), so instead of the cache's lists the scan reads the struct
// page array (vmemmap) once: a slab's head page names its cache
// (slab.slab_cache, struct slab overlays struct page) and its object count,
// and the objects sit at the page's direct-map address, size bytes apart.
// Reading the page array costs sizeof(struct page) per 4 KiB of guest RAM
// (4 MiB for 256 MiB); each object of the cache is then validated
// (liveTask), so free and half-built objects drop out.

// slabChunk is how many struct pages one read covers.
const slabChunk = 1024

// maxSlabOrder bounds a cache's slab order (PAGE_ALLOC_COSTLY_ORDER is 3,
// SLUB uses up to MAX_ORDER-1 for large objects).
const maxSlabOrder = 10

// SlabTasks returns the address of every object slot in the task_struct
// slab cache (free slots included: liveTask tells them apart) and how many
// slabs hold them.
func (k *Kernel) SlabTasks() (tasks []uint64, slabs int, err error) {
	cp, err := k.Sym("task_struct_cachep")
	if err != nil {
		return nil, 0, err
	}
	cache, err := k.U64(cp)
	if err != nil {
		return nil, 0, fmt.Errorf("task_struct_cachep: %w", err)
	}
	if !kernelAddr(cache) || cache&7 != 0 {
		return nil, 0, fmt.Errorf("task_struct_cachep is %#x, not a kernel address", cache)
	}
	offs := map[string]uint64{}
	for _, p := range []string{"kmem_cache.size", "kmem_cache.oo", "slab.slab_cache", "slab.counters"} {
		if offs[p], err = k.Off(p); err != nil {
			return nil, 0, err
		}
	}
	size, err := k.U32(cache + offs["kmem_cache.size"])
	if err != nil {
		return nil, 0, fmt.Errorf("kmem_cache at %#x: %w", cache, err)
	}
	oo, err := k.U32(cache + offs["kmem_cache.oo"])
	if err != nil {
		return nil, 0, fmt.Errorf("kmem_cache at %#x: %w", cache, err)
	}
	// oo packs the slab's page order (high 16 bits) and its object count.
	order, perSlab := oo>>16, oo&0xffff
	// The cache's objects are arch_task_struct_size bytes: the BTF size
	// less the FPU register area the CPU does not use, so they may be
	// smaller than sizeof(struct task_struct), never smaller than the
	// members read from them.
	minSize := uint64(1024)
	for _, f := range []string{"task_struct.comm", "task_struct.real_cred", "task_struct.exit_state", "task_struct.sched_class",
		"task_struct.stack", "task_struct.cred", "task_struct.pid_links", "task_struct.thread_pid"} {
		if o, ok := k.L.Offsets[f]; ok {
			minSize = max(minSize, o+16)
		}
	}
	if size == 0 || uint64(size) < minSize || size > 1<<20 || order > maxSlabOrder || perSlab == 0 ||
		uint64(perSlab)*uint64(size) > 4096<<order {
		return nil, 0, fmt.Errorf("task_struct cache: object size %d, order %d, %d objects per slab: inconsistent", size, order, perSlab)
	}
	pageSize := k.L.Sizes["page"]
	if pageSize == 0 {
		pageSize = 64
	}
	if pageSize < 32 || pageSize > 256 || pageSize%8 != 0 {
		return nil, 0, fmt.Errorf("sizeof(struct page) %d is implausible", pageSize)
	}
	if offs["slab.slab_cache"]+8 > pageSize || offs["slab.counters"]+8 > pageSize {
		return nil, 0, fmt.Errorf("struct slab members lie outside struct page")
	}
	vb, err := k.Sym("vmemmap_base")
	if err != nil {
		return nil, 0, err
	}
	vmemmap, err := k.U64(vb)
	if err != nil {
		return nil, 0, fmt.Errorf("vmemmap_base: %w", err)
	}
	if !kernelAddr(vmemmap) {
		return nil, 0, fmt.Errorf("vmemmap_base is %#x, not a kernel address", vmemmap)
	}

	runs := []mem.Region{{GPA: 0, Size: k.Mem.Size()}}
	if r, ok := k.Mem.(interface{ Regions() []mem.Region }); ok {
		runs = r.Regions()
	}
	b := NewBudget(int(k.Mem.Size()/4096/slabChunk)+len(runs)+8*MaxTasks, walkTime)
	buf := make([]byte, slabChunk*pageSize)
	for _, run := range runs {
		if tasks, slabs, err = k.slabRun(run, b, buf, pageSize, vmemmap, cache, offs, size, perSlab, tasks, slabs); err != nil {
			return tasks, slabs, err
		}
	}
	return tasks, slabs, nil
}

// slabRun scans the struct pages of one run of guest RAM.
func (k *Kernel) slabRun(run mem.Region, b *Budget, buf []byte, pageSize, vmemmap, cache uint64, offs map[string]uint64,
	size, perSlab uint32, tasks []uint64, slabs int) ([]uint64, int, error) {
	first, end := (run.GPA+4095)/4096, run.End()/4096
	for pfn := first; pfn < end; pfn += slabChunk {
		if err := b.Take(); err != nil {
			return tasks, slabs, err
		}
		n := min(slabChunk, end-pfn)
		chunk := buf[:n*pageSize]
		// The page array has holes where RAM has them: an unreadable
		// chunk describes no RAM the kernel could hand out.
		if k.Read(vmemmap+pfn*pageSize, chunk) != nil {
			continue
		}
		for i := uint64(0); i < n; i++ {
			pg := chunk[i*pageSize : (i+1)*pageSize]
			// A tail page's compound_head (offset 8) has bit 0 set; a
			// head's slab_list or next pointer does not.
			if binary.LittleEndian.Uint64(pg[offs["slab.slab_cache"]:]) != cache || binary.LittleEndian.Uint64(pg[8:])&1 != 0 {
				continue
			}
			objects := uint32(binary.LittleEndian.Uint64(pg[offs["slab.counters"]:])>>16) & 0x7fff
			objects = min(objects, perSlab)
			base := k.PageOffset + (pfn+i)*4096
			slabs++
			for j := uint32(0); j < objects; j++ {
				if err := b.Take(); err != nil {
					return tasks, slabs, err
				}
				if len(tasks) >= MaxTasks {
					return tasks, slabs, ErrBudget
				}
				tasks = append(tasks, base+uint64(j)*uint64(size))
			}
		}
	}
	return tasks, slabs, nil
}
