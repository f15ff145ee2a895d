package itest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPS: the daemon's TCP listener speaks TLS with a certificate from
// its own CA; over TCP nobody is trusted without a token.
func TestHTTPS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := newHost(t, "--listen", addr)
	h.mustCLI(nil, "user", "create", "remote")
	h.mustCLI(nil, "perm", "grant", "--user", "remote", "--role", "ReadOnly", "--path", "/")
	var tok map[string]any
	h.mustCLI(&tok, "token", "create", "remote")
	ca := filepath.Join(h.dir, "state", "tls", "ca.crt")
	remote := func(env ...string) (string, string, error) {
		cmd := exec.Command(binPath, "vm", "list", "-o", "json")
		cmd.Env = append(os.Environ(), append([]string{"BULWARK_SERVER=https://" + addr}, env...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if out, errs, err := remote("BULWARK_CA="+ca, "BULWARK_TOKEN="+tok["secret"].(string)); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("with CA and token: %v %s %s", err, out, errs)
	}
	if _, errs, err := remote("BULWARK_CA=" + ca); err == nil || !strings.Contains(errs, "unauthenticated") {
		t.Fatalf("without a token over TCP: %v %q", err, errs)
	}
	if _, errs, err := remote("BULWARK_TOKEN=" + tok["secret"].(string)); err == nil || !strings.Contains(errs, "certificate") {
		t.Fatalf("without the CA: %v %q", err, errs)
	}
}
