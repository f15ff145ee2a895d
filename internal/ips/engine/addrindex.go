package engine

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// addrIndex finds the header-only rules whose source (or destination) set
// may hold an address without walking them all: ET Open has about 1,200
// such rules, most of them reputation lists of thousands of networks, and
// checking each on every new flow would dominate short flows. The index
// cuts the address space into elementary segments; each lists the rules
// whose set covers it.
type addrIndex struct {
	starts []netip.Addr // segment i is [starts[i], starts[i+1])
	ids    [][]int32
}

type addrEvent struct {
	at  netip.Addr
	id  int32
	add bool
}

func buildAddrIndex(sets []rules.AddrSet, ids []int32) addrIndex {
	var ev []addrEvent
	for i, s := range sets {
		for _, r := range s.Ranges {
			ev = append(ev, addrEvent{at: r.Lo, id: ids[i], add: true})
			if n := r.Hi.Next(); n.IsValid() && n.BitLen() == r.Hi.BitLen() {
				ev = append(ev, addrEvent{at: n, id: ids[i]})
			}
		}
	}
	sort.Slice(ev, func(a, b int) bool { return ev[a].at.Compare(ev[b].at) < 0 })
	var ix addrIndex
	active := map[int32]int{}
	for i := 0; i < len(ev); {
		at := ev[i].at
		for ; i < len(ev) && ev[i].at == at; i++ {
			if ev[i].add {
				active[ev[i].id]++
			} else if active[ev[i].id]--; active[ev[i].id] <= 0 {
				delete(active, ev[i].id)
			}
		}
		cur := make([]int32, 0, len(active))
		for id := range active {
			cur = append(cur, id)
		}
		slices.Sort(cur)
		ix.starts = append(ix.starts, at)
		ix.ids = append(ix.ids, cur)
	}
	return ix
}

// lookup returns the rules whose set may hold a; the slice is shared.
func (ix *addrIndex) lookup(a netip.Addr) []int32 {
	a = a.Unmap()
	i := sort.Search(len(ix.starts), func(i int) bool { return ix.starts[i].Compare(a) > 0 }) - 1
	if i < 0 {
		return nil
	}
	// A segment that starts in the other address family does not hold a.
	if ix.starts[i].Is4() != a.Is4() {
		return nil
	}
	return ix.ids[i]
}

// headerRules indexes the header-only transport rules: those with a
// specific source set by source, those with a specific destination set
// by destination, the rest (any to any, bidirectional) in general.
type headerRules struct {
	bySrc, byDst addrIndex
	general      []int32
}

func buildHeaderRules(rs []*rules.Rule, ids []int32) headerRules {
	var h headerRules
	var srcSets, dstSets []rules.AddrSet
	var srcIDs, dstIDs []int32
	for _, id := range ids {
		r := rs[id]
		switch {
		case r.Bidirectional:
			h.general = append(h.general, id)
		case !r.Src.IsAny():
			srcSets, srcIDs = append(srcSets, r.Src), append(srcIDs, id)
		case !r.Dst.IsAny():
			dstSets, dstIDs = append(dstSets, r.Dst), append(dstIDs, id)
		default:
			h.general = append(h.general, id)
		}
	}
	h.bySrc = buildAddrIndex(srcSets, srcIDs)
	h.byDst = buildAddrIndex(dstSets, dstIDs)
	return h
}

// appendCandidates appends the rules that may match a packet from src to
// dst; their headers still need checking.
func (h *headerRules) appendCandidates(dst []int32, src, dstAddr netip.Addr) []int32 {
	dst = append(dst, h.general...)
	dst = append(dst, h.bySrc.lookup(src)...)
	return append(dst, h.byDst.lookup(dstAddr)...)
}
