package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ipsstage"
	"github.com/bulwark-project/bulwark/internal/ipssvc"
)

// The IPS through the API, with the privileges: a NetworkAdmin loads rules
// and sets modes, a SecurityAuditor reads them and changes nothing, and
// neither may create mirror sessions or service chains (Network.Mirror).
func TestIPSAPI(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	stage := ipsstage.New(ipsstage.Options{Log: slog.Default()})
	t.Cleanup(stage.Close)
	svc, err := ipssvc.New(context.Background(), stage, ts.st, filepath.Join(t.TempDir(), "rules"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ts.srv.SetIPS(&IPS{Svc: svc, EVEPath: filepath.Join(t.TempDir(), "eve.json")})

	for _, u := range []struct{ name, role string }{{"netadm", "NetworkAdmin"}, {"auditor", "SecurityAuditor"}} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u.name+`"}`))
		if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"`+u.name+`","role":"`+u.role+`","path":"/","propagate":true}`)); rec.Code != 201 {
			t.Fatalf("grant %s: %d %s", u.name, rec.Code, rec.Body)
		}
	}
	adm, aud := ts.token("netadm"), ts.token("auditor")
	rules := `alert http any any -> any any (msg:"x"; http.uri; content:"/evil"; sid:7; rev:1;)
alert smtp any any -> any any (msg:"y"; content:"z"; sid:8; rev:1;)
`
	rec := ts.as(adm, "PUT", "/api/v1/ips/rules/local.rules", body(rules))
	if rec.Code != 200 {
		t.Fatalf("netadm PUT rules: %d %s", rec.Code, rec.Body)
	}
	var rep ipssvc.FileReport
	json.Unmarshal(rec.Body.Bytes(), &rep)
	if rep.Loaded != 1 || rep.Skipped["protocol smtp"] != 1 {
		t.Errorf("report %+v", rep)
	}
	for _, c := range []struct {
		tok, method, path, body string
		want                    int
	}{
		{adm, "PUT", "/api/v1/ips/mode", `{"network":"n1","mode":"block"}`, 200},
		{adm, "PUT", "/api/v1/ips/mode", `{"network":"n1","mode":"loud"}`, 400},
		{adm, "PUT", "/api/v1/ips/mode", `{"network":"n1","mode":"block","extra":1}`, 400},
		{adm, "PUT", "/api/v1/ips/rules/.hidden", rules, 400},
		{adm, "DELETE", "/api/v1/ips/rules/nosuch.rules", "", 404},
		{aud, "GET", "/api/v1/ips", "", 200},
		{aud, "GET", "/api/v1/ips/rules?hits=1", "", 200},
		{aud, "GET", "/api/v1/ips/alerts", "", 200},
		{aud, "PUT", "/api/v1/ips/mode", `{"network":"n1","mode":"off"}`, 403},
		{aud, "PUT", "/api/v1/ips/rules/local.rules", rules, 403},
		{adm, "POST", "/api/v1/mirrors", `{"name":"m","network":"n1","sources":["a"],"target":{"kind":"pcap"}}`, 403},
		{adm, "POST", "/api/v1/service-chains", `{"name":"c","network":"n1","in_port":"a/nic0","out_port":"a/nic1"}`, 403},
	} {
		if rec := ts.as(c.tok, c.method, c.path, body(c.body)); rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.want, rec.Body)
		}
	}
	if p := svc.Policy(); p.Networks["n1"].Mode != ipsstage.ModeBlock {
		t.Errorf("policy after the auditor's refused change: %+v", p)
	}
}
