package auth

import (
	"fmt"
	"sort"
	"strings"
)

// Inheritance through resource pools: a VM in a pool also holds what its
// users are granted on the pool (and the pool's ancestors), as Proxmox and
// vSphere do. The permission tree stays a tree of paths (/vms/NAME,
// /pools/NAME); WithInherit adds, per object, extra parents whose
// propagating entries apply to it as to an object directly below them.
//
// Rules:
//   - the object's own resolution decides first; NoAccess there (on the
//     object or an ancestor path) masks everything, inherited grants
//     included;
//   - each extra parent contributes what a new object directly under it
//     would hold (its propagating entries, resolved up its own path); a
//     NoAccess deciding there masks that parent's contribution only;
//   - contributions are united.
//
// The no-escalation gate sees inherited privileges like any other: the
// regions it checks include every object with extra parents, both when an
// entry on a pool path changes and when an object's extra parents change
// (a VM moved into a pool gives the pool's users power over it).

// WithInherit returns a copy of p in which each object path in m also
// inherits from the paths listed for it (nearest first). Paths must be
// canonical. p itself is unchanged.
func (p *Policy) WithInherit(m map[string][]string) (*Policy, error) {
	q := *p
	q.inherit = make(map[string][]string, len(m))
	q.inheritKeys = make([]string, 0, len(m))
	for obj, parents := range m {
		if reason, _ := checkPath(obj); reason != "" || obj == "/" {
			return nil, fmt.Errorf("%w: inheriting object %q", ErrInvalidPath, obj)
		}
		for _, par := range parents {
			if reason, _ := checkPath(par); reason != "" {
				return nil, fmt.Errorf("%w: %q inherits from %q", ErrInvalidPath, obj, par)
			}
			if par == obj || strings.HasPrefix(obj, par+"/") || par == "/" {
				return nil, fmt.Errorf("%w: %q cannot inherit from its own ancestor %q", ErrInvalidPath, obj, par)
			}
		}
		if len(parents) > 0 {
			q.inherit[obj] = append([]string(nil), parents...)
			q.inheritKeys = append(q.inheritKeys, obj)
		}
	}
	sort.Strings(q.inheritKeys)
	return &q, nil
}

// Inherit returns the extra parents of obj (nil when none).
func (p *Policy) Inherit(obj string) []string { return p.inherit[obj] }

// resolveAll is resolve plus inheritance for an object itself (not a
// "below" region: objects without entries and without extra parents).
func (p *Policy) resolveAll(user, target string, below bool, ov *override) (PrivSet, string, bool) {
	privs, at, masked := p.resolve(user, target, below, ov)
	if below || masked {
		return privs, at, masked
	}
	for _, par := range p.inherit[target] {
		pp, pat, pm := p.resolve(user, par, true, ov)
		if pm || pat == "" {
			continue
		}
		privs = privs.Union(pp)
		if at == "" {
			at = pat
		}
	}
	return privs, at, false
}

// inheritedUnder lists the objects with extra parents that the subtree at
// root can affect: those under root, and those inheriting from a path
// under (or at) root.
func (p *Policy) inheritedUnder(root string) []string {
	prefix := root + "/"
	if root == "/" {
		return p.inheritKeys
	}
	var out []string
	for _, obj := range p.inheritKeys {
		if obj == root || strings.HasPrefix(obj, prefix) {
			out = append(out, obj)
			continue
		}
		for _, par := range p.inherit[obj] {
			if par == root || strings.HasPrefix(par, prefix) {
				out = append(out, obj)
				break
			}
		}
	}
	return out
}
