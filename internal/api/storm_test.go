package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/auth"
)

// Concurrent grant/revoke storms by several managers and the root keep the
// policy consistent: afterwards the live policy, the stored entries and a
// policy rebuilt from the store agree on every user's privileges on every
// object, and no manager ever held more than at the start (the root may
// take their entries away).
func TestGrantRevokeStormConsistent(t *testing.T) {
	ts, acc := newAccessTestServer(t)
	root := func(method, path, b string) {
		t.Helper()
		if rec := ts.do(method, path, body(b)); rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
	}
	managers := []string{"m1", "m2", "m3"}
	targets := []string{"t1", "t2", "t3", "t4"}
	for _, u := range append(managers, targets...) {
		root("POST", "/api/v1/users", `{"name":"`+u+`"}`)
	}
	root("POST", "/api/v1/roles", `{"name":"pm"}`)
	for _, p := range []string{"Permission.Manage", "VM.Audit", "VM.PowerOn", "VM.PowerOff", "VM.Console", "Monitor.Read"} {
		root("POST", "/api/v1/roles/pm/privileges", `{"privilege":"`+p+`"}`)
	}
	for _, m := range managers {
		root("POST", "/api/v1/permissions", `{"user":"`+m+`","role":"pm","path":"/vms","propagate":true}`)
	}
	objs := []string{"/", "/vms", "/vms/a", "/vms/b", "/vms/c", "/networks", "/users"}
	start := map[string]map[string]auth.PrivSet{}
	for _, m := range managers {
		start[m] = map[string]auth.PrivSet{}
		for _, o := range objs {
			start[m][o] = acc.Privileges(m, o)
		}
	}
	toks := map[string]string{}
	for _, m := range managers {
		toks[m] = ts.token(m)
	}
	roles := []string{"VMOperator", "ReadOnly", "NoAccess", "pm", "Administrator"}
	paths := []string{"/vms", "/vms/a", "/vms/b", "/vms/c", "/"}
	var wg sync.WaitGroup
	for w, who := range append([]string{"root"}, managers...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range 150 {
				var method, path, b string
				if rng.IntN(2) == 0 {
					method, path = "POST", "/api/v1/permissions"
					b = fmt.Sprintf(`{"user":%q,"role":%q,"path":%q,"propagate":%t}`, targets[rng.IntN(len(targets))],
						roles[rng.IntN(len(roles))], paths[rng.IntN(len(paths))], rng.IntN(2) == 0)
				} else {
					ps := acc.Permissions()
					if len(ps) == 0 {
						continue
					}
					method, path = "DELETE", "/api/v1/permissions/"+ps[rng.IntN(len(ps))].ID
				}
				if who == "root" {
					ts.do(method, path, body(b))
				} else {
					ts.as(toks[who], method, path, body(b))
				}
				for _, m := range managers { // no manager ever gains anything
					if got := acc.Privileges(m, "/vms/a"); !start[m]["/vms/a"].ContainsAll(got) {
						t.Errorf("manager %s now holds %s on /vms/a", m, got)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// The store holds exactly the live entries, and a policy rebuilt from it
	// answers every question the same way.
	rebuilt, err := access.New(context.Background(), ts.st)
	if err != nil {
		t.Fatal(err)
	}
	live, stored := acc.Permissions(), rebuilt.Permissions()
	lj, _ := json.Marshal(live)
	sj, _ := json.Marshal(stored)
	if string(lj) != string(sj) {
		t.Fatalf("live entries differ from the stored ones:\n%s\n%s", lj, sj)
	}
	for _, u := range append(managers, targets...) {
		for _, o := range objs {
			if a, b := acc.Privileges(u, o), rebuilt.Privileges(u, o); a != b {
				t.Errorf("%s on %s: live %s, rebuilt %s", u, o, a, b)
			}
		}
		for _, o := range objs {
			if start[u] != nil && !start[u][o].ContainsAll(acc.Privileges(u, o)) {
				t.Errorf("manager %s ended with %s on %s, started with %s", u, acc.Privileges(u, o), o, start[u][o])
			}
		}
	}
	t.Logf("%d entries after the storm", len(live))
}
