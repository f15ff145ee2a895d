package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/poolsvc"
)

func withPools(t *testing.T, ts *testServer) *poolsvc.Service {
	t.Helper()
	svc, err := poolsvc.New(context.Background(), ts.st, ts.mgr, pool.Capacity{CPUMilli: 4000, MemoryMiB: 8192}, 256, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.SetPools(&Pools{Svc: svc})
	return svc
}

// Pools through the API: refusals name what is wrong and change nothing;
// a VM in a pool inherits the pool's grants; moving a VM into a pool that
// would give someone power the mover lacks is refused.
func TestPoolsAPI(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	withPools(t, ts)
	must := func(code int, method, path, b string) string {
		t.Helper()
		rec := ts.do(method, path, body(b))
		if rec.Code != code {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, rec.Code, code, rec.Body)
		}
		return rec.Body.String()
	}
	must(201, "POST", "/api/v1/pools", `{"name":"gold","cpu":{"reservation":2000},"memory":{"reservation":1024}}`)
	must(409, "POST", "/api/v1/pools", `{"name":"big","cpu":{"reservation":3000}}`)
	must(400, "POST", "/api/v1/pools", `{"name":"loop","parent":"nope"}`)
	must(400, "POST", "/api/v1/pools", `{"name":"neg","cpu":{"reservation":-1}}`)
	must(400, "POST", "/api/v1/pools", `{"name":"inv","cpu":{"reservation":500,"limit":100}}`)
	must(201, "POST", "/api/v1/pools", `{"name":"silver","parent":"gold","cpu":{"reservation":500}}`)
	must(400, "PUT", "/api/v1/pools/gold", `{"name":"gold","parent":"silver","cpu":{"reservation":2000}}`) // a cycle
	out := must(200, "GET", "/api/v1/pools/gold", "")
	var pv PoolView
	json.Unmarshal([]byte(out), &pv)
	if pv.Pool.Parent != pool.RootName || pv.CPU.ReservedByPools != 500 || len(pv.Children) != 1 {
		t.Fatalf("gold after refusals: %s", out)
	}
	must(201, "POST", "/api/v1/vms", `{"name":"web","memory_mib":64,"kernel":"`+ts.kernel+`","pool":"gold"}`)
	must(400, "POST", "/api/v1/vms", `{"name":"lost","memory_mib":64,"kernel":"`+ts.kernel+`","pool":"nope"}`)
	must(409, "DELETE", "/api/v1/pools/gold", "")

	// pooladm holds VMOperator on /pools/gold: it reaches web, not others.
	ts.do("POST", "/api/v1/users", body(`{"name":"pooladm"}`))
	must(201, "POST", "/api/v1/permissions", `{"user":"pooladm","role":"VMOperator","path":"/pools/gold","propagate":true}`)
	must(201, "POST", "/api/v1/vms", `{"name":"other","memory_mib":64,"kernel":"`+ts.kernel+`"}`)
	tok := ts.token("pooladm")
	if rec := ts.as(tok, "GET", "/api/v1/vms/web", nil); rec.Code != 200 {
		t.Fatalf("pooladm on web (in gold): %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(tok, "GET", "/api/v1/vms/other", nil); rec.Code != 403 {
		t.Fatalf("pooladm on other (not in gold): %d", rec.Code)
	}

	// mover may configure "other" and allocate in gold but holds no
	// console there: moving other into gold would give pooladm
	// VM.Console on it, which mover lacks. Refused, nothing moves.
	ts.do("POST", "/api/v1/users", body(`{"name":"mover"}`))
	ts.do("POST", "/api/v1/roles", body(`{"name":"cfg"}`))
	ts.do("POST", "/api/v1/roles/cfg/privileges", body(`{"privilege":"VM.Config"}`))
	ts.do("POST", "/api/v1/roles/cfg/privileges", body(`{"privilege":"VM.Audit"}`))
	ts.do("POST", "/api/v1/roles", body(`{"name":"alloc"}`))
	ts.do("POST", "/api/v1/roles/alloc/privileges", body(`{"privilege":"Pool.Allocate"}`))
	must(201, "POST", "/api/v1/permissions", `{"user":"mover","role":"cfg","path":"/vms/other","propagate":false}`)
	must(201, "POST", "/api/v1/permissions", `{"user":"mover","role":"alloc","path":"/pools/gold","propagate":false}`)
	mtok := ts.token("mover")
	rec := ts.as(mtok, "PATCH", "/api/v1/vms/other", body(`{"pool":"gold"}`))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "pooladm") {
		t.Fatalf("escalating move: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(tok, "GET", "/api/v1/vms/other", nil); rec.Code != 403 {
		t.Fatalf("pooladm reached other after a refused move: %d", rec.Code)
	}
	// Without Pool.Allocate on silver, mover cannot place other there.
	rec = ts.as(mtok, "PATCH", "/api/v1/vms/other", body(`{"pool":"silver"}`))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "Pool.Allocate") {
		t.Fatalf("move without Pool.Allocate: %d %s", rec.Code, rec.Body)
	}
	// The local root moves it; pooladm then reaches it (silver is under
	// gold, so the grant on gold propagates through the pool tree).
	must(200, "PATCH", "/api/v1/vms/other", `{"pool":"silver"}`)
	if rec := ts.as(tok, "GET", "/api/v1/vms/other", nil); rec.Code != 200 {
		t.Fatalf("pooladm on other in silver (under gold): %d %s", rec.Code, rec.Body)
	}
	// Pool listing is filtered by Pool.Audit: pooladm holds none.
	if rec := ts.as(tok, "GET", "/api/v1/pools", nil); rec.Code != 200 || strings.Contains(rec.Body.String(), `"gold"`) {
		t.Fatalf("pool list for pooladm: %d %s", rec.Code, rec.Body)
	}
}
