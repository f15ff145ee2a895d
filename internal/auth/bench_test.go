package auth

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

type query struct {
	user string
	priv Privilege
	path string
}

// bigPolicy builds a policy with n entries spread over 2,000 VMs (half of
// them inside 20 pools), 500 users and 50 groups, each user in 3 groups, and
// returns it with 1,024 queries over the same objects. Seeded: every run sees
// the same policy.
func bigPolicy(tb testing.TB, n int) (*Policy, []query) {
	rng := rand.New(rand.NewPCG(1, 2))
	const vms, users, groupCount, pools = 2000, 500, 50, 20
	vmPath := func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("/pools/p%d/vms/vm%d", i%pools, i)
		}
		return fmt.Sprintf("/vms/vm%d", i)
	}
	roles := []string{RoleNoAccess, RoleReadOnly, RoleVMOperator, RoleNetworkAdmin, RoleSecurityAuditor, RoleAdministrator}
	groups := make(map[string][]string, users)
	for i := range users {
		for range 3 {
			groups[fmt.Sprintf("u%d", i)] = append(groups[fmt.Sprintf("u%d", i)], fmt.Sprintf("g%d", rng.IntN(groupCount)))
		}
	}
	entries := []Entry{u("root", RoleAdministrator, "/", prop), g("g0", RoleReadOnly, "/", prop), g("g1", RoleVMOperator, "/vms", prop)}
	for i := range pools {
		entries = append(entries, g(fmt.Sprintf("g%d", i), RoleVMOperator, fmt.Sprintf("/pools/p%d", i), prop))
	}
	for len(entries) < n {
		e := Entry{Role: roles[rng.IntN(len(roles))], Path: vmPath(rng.IntN(vms)), Propagate: rng.IntN(4) != 0}
		if rng.IntN(2) == 0 {
			e.Subject.User = fmt.Sprintf("u%d", rng.IntN(users))
		} else {
			e.Subject.Group = fmt.Sprintf("g%d", rng.IntN(groupCount))
		}
		entries = append(entries, e)
	}
	p := mustCompile(tb, nil, entries, groups, map[string]bool{"u13": true})
	cat := Catalogue()
	qs := make([]query, 1024)
	for i := range qs {
		qs[i] = query{fmt.Sprintf("u%d", rng.IntN(users)), cat[rng.IntN(len(cat))].Name, vmPath(rng.IntN(vms))}
	}
	return p, qs
}

func BenchmarkAllowed10k(b *testing.B) {
	p, qs := bigPolicy(b, 10_000)
	allowed := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := qs[i%len(qs)]
		if p.Allowed(q.user, q.priv, q.path) {
			allowed++
		}
	}
	b.ReportMetric(float64(allowed)/float64(b.N), "allowed/op")
}

// BenchmarkAllowedDeepest is the worst case for the walk: a path of
// MaxPathDepth segments whose only applicable entry is on "/", for a user in
// 3 groups, with entries for others on every ancestor.
func BenchmarkAllowedDeepest(b *testing.B) {
	deep := "/pools/p0/pools/p1/pools/p2/pools/p3"
	var entries []Entry
	for p := deep; p != "/"; p = parentPath(p) {
		entries = append(entries, u("other", RoleAdministrator, p, prop), g("others", RoleAdministrator, p, prop))
	}
	entries = append(entries, g("g2", RoleVMOperator, "/", prop))
	p := mustCompile(b, nil, entries, map[string][]string{"alice": {"g0", "g1", "g2"}}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !p.Allowed("alice", VMPowerOn, deep) {
			b.Fatal("denied")
		}
	}
}

func TestAllowedNoAllocs(t *testing.T) {
	p, qs := bigPolicy(t, 10_000)
	hostile := make([]string, len(qs))
	for i, q := range qs {
		hostile[i] = "/vms/../" + q.path
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		q := qs[i%len(qs)]
		p.Allowed(q.user, q.priv, q.path)
		p.Explain(q.user, q.priv, q.path)
		p.Privileges(q.user, q.path)
		p.Allowed(q.user, q.priv, hostile[i%len(qs)]) // hostile input is also free
		i++
	})
	if allocs != 0 {
		t.Errorf("access checks allocate %v times per call", allocs)
	}
}

func BenchmarkCompile10k(b *testing.B) {
	p, _ := bigPolicy(b, 10_000)
	var entries []Entry
	for _, n := range p.byPath {
		entries = append(entries, n.entries...)
	}
	groups := p.groupsCopy()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(nil, entries, groups, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanGrant10k(b *testing.B) {
	p, _ := bigPolicy(b, 10_000)
	// Propagating on /vms: the actor's privileges are checked on each of
	// the ~1,000 VMs below it that hold entries.
	e := u("u1", RoleVMOperator, "/vms", prop)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.CanGrant("root", e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalPath("/pools/prod/vms/web-frontend-1"); err != nil {
			b.Fatal(err)
		}
	}
}

// The no-escalation gate in the 10,000-entry policy: a propagating grant on
// /vms to one user (regions of ~1,000 VMs), and adding a user to a group
// (every region of the policy, for one user), against Compile, which every
// change pays anyway.
func BenchmarkCheckChange10k(b *testing.B) {
	before, _ := bigPolicy(b, 10_000)
	var entries []Entry
	for _, n := range before.byPath {
		entries = append(entries, n.entries...)
	}
	groups := before.groupsCopy()
	grant, err := Compile(nil, append(entries, u("u1", RoleVMOperator, "/vms", prop)), groups, nil)
	if err != nil {
		b.Fatal(err)
	}
	groups["u2"] = append(groups["u2"], "g7")
	join, err := Compile(nil, entries, groups, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("grant", func(b *testing.B) {
		for b.Loop() {
			if err := CheckChange(before, grant, "root", Change{Users: []string{"u1"}, Roots: []string{"/vms"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("group", func(b *testing.B) {
		for b.Loop() {
			if err := CheckChange(before, join, "root", Change{Users: []string{"u2"}, Roots: []string{"/"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("actfor", func(b *testing.B) {
		for b.Loop() {
			if err := CheckActFor(before, "root", "u2"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
