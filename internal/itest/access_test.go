package itest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAccessCLI: a user with a token sees what their role allows and is
// refused the rest, with the reason; revocation acts on the next command.
func TestAccessCLI(t *testing.T) {
	h := newHost(t)
	h.createVM("acc")
	h.mustCLI(nil, "user", "create", "ops")
	h.mustCLI(nil, "perm", "grant", "--user", "ops", "--role", "ReadOnly", "--path", "/vms")
	var tok map[string]any
	h.mustCLI(&tok, "token", "create", "ops", "--description", "itest")
	secret, _ := tok["secret"].(string)
	as := func(args ...string) (string, string, error) {
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket, "BULWARK_TOKEN="+secret)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if out, errs, err := as("vm", "list"); err != nil || !strings.Contains(out, "acc") {
		t.Fatalf("ops lists VMs: %v %s %s", err, out, errs)
	}
	if _, errs, err := as("vm", "start", "acc"); err == nil || !strings.Contains(errs, `lacks VM.PowerOn on /vms/acc`) {
		t.Fatalf("ops starts a VM: %v %q", err, errs)
	}
	if _, errs, err := as("perm", "grant", "--user", "ops", "--role", "Administrator"); err == nil || !strings.Contains(errs, "Permission.Manage") {
		t.Fatalf("ops grants themselves Administrator: %v %q", err, errs)
	}
	// Password login gives a session token with the same rights.
	passwd := exec.Command(binPath, "user", "passwd", "ops", "--password-stdin")
	passwd.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	passwd.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := passwd.CombinedOutput(); err != nil {
		t.Fatalf("passwd: %v %s", err, out)
	}
	login := exec.Command(binPath, "login", "ops", "--password-stdin")
	login.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	login.Stdin = strings.NewReader("correct horse battery\n")
	sess, err := login.Output()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(sess)), "bws_") {
		t.Fatalf("login: %v %q", err, sess)
	}
	secret = strings.TrimSpace(string(sess))
	if out, errs, err := as("vm", "list"); err != nil || !strings.Contains(out, "acc") {
		t.Fatalf("ops lists VMs with a session: %v %s %s", err, out, errs)
	}
	// Group membership: a grant to a group reaches its members.
	h.mustCLI(nil, "group", "add-member", "starters", "ops")
	h.mustCLI(nil, "role", "create", "starter")
	h.mustCLI(nil, "role", "add", "starter", "VM.PowerOn")
	h.mustCLI(nil, "perm", "grant", "--group", "starters", "--role", "starter", "--path", "/vms/acc")
	if _, errs, err := as("vm", "start", "acc"); err != nil && strings.Contains(errs, "lacks") {
		t.Fatalf("group grant did not reach ops: %q", errs)
	}
	h.mustCLI(nil, "user", "disable", "ops")
	if _, errs, err := as("vm", "list"); err == nil || !strings.Contains(errs, "disabled") {
		t.Fatalf("disabled user: %v %q", err, errs)
	}
	// Every refusal is on record.
	var recs []map[string]any
	h.mustCLI(&recs, "audit", "list")
	denied := 0
	for _, r := range recs {
		if r["result"] == "denied" {
			denied++
		}
	}
	if denied < 3 {
		t.Errorf("audit holds %d denials, want at least 3: %v", denied, recs)
	}
}

// TestAdminInit: the bootstrap creates an administrator whose one-time
// password logs in with full rights; a second init is refused.
func TestAdminInit(t *testing.T) {
	h := newHost(t)
	var out map[string]any
	h.mustCLI(&out, "admin", "init")
	pw, _ := out["password"].(string)
	if len(pw) < 12 {
		t.Fatalf("one-time password %q", pw)
	}
	login := exec.Command(binPath, "login", "admin", "--password-stdin")
	login.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	login.Stdin = strings.NewReader(pw + "\n")
	sess, err := login.Output()
	if err != nil {
		t.Fatalf("admin login: %v", err)
	}
	cmd := exec.Command(binPath, "user", "create", "second")
	cmd.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket, "BULWARK_TOKEN="+strings.TrimSpace(string(sess)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin creates a user: %v %s", err, b)
	}
	if _, _, err := h.cli("admin", "init"); err == nil {
		t.Fatal("second admin init succeeded")
	}
}
