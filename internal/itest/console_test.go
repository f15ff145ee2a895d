package itest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/console"
)

// conClient is one console connection under test: output accumulates,
// control messages are kept in order.
type conClient struct {
	t    *testing.T
	con  *client.Console
	mu   sync.Mutex
	out  bytes.Buffer
	ctls []client.ConsoleControl
	done chan struct{}
	err  error
}

func dialConsole(t *testing.T, c *client.Client, vmName string, o client.ConsoleOptions) *conClient {
	t.Helper()
	con, err := c.DialConsole(context.Background(), vmName, o)
	if err != nil {
		t.Fatalf("dial console: %v", err)
	}
	cc := &conClient{t: t, con: con, done: make(chan struct{})}
	go func() {
		defer close(cc.done)
		for {
			out, ctl, err := con.Read(context.Background())
			cc.mu.Lock()
			if err != nil {
				cc.err = err
				cc.mu.Unlock()
				return
			}
			if ctl != nil {
				cc.ctls = append(cc.ctls, *ctl)
			} else {
				cc.out.Write(out)
			}
			cc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { con.Close() })
	return cc
}

func (cc *conClient) output() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.out.String()
}

// control returns the first control message of a type whose text holds sub.
func (cc *conClient) control(typ, sub string) *client.ConsoleControl {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for i := range cc.ctls {
		c := cc.ctls[i]
		if c.Type == typ && strings.Contains(c.Message+c.Reason+c.State, sub) {
			return &c
		}
	}
	return nil
}

func (cc *conClient) waitControl(h *host, typ, sub string) *client.ConsoleControl {
	cc.t.Helper()
	var c *client.ConsoleControl
	h.waitFor("console "+typ+" "+sub, 30*time.Second, func() bool { c = cc.control(typ, sub); return c != nil })
	return c
}

func (cc *conClient) waitOutput(h *host, sub string) {
	cc.t.Helper()
	h.waitFor("console output "+sub, 60*time.Second, func() bool { return strings.Contains(cc.output(), sub) })
}

// typeSlowly sends one key per message at a person's pace.
func (cc *conClient) typeSlowly(s string) {
	for _, r := range s {
		if err := cc.con.Send(context.Background(), []byte(string(r))); err != nil {
			cc.t.Fatalf("send: %v", err)
		}
		time.Sleep(60 * time.Millisecond)
	}
}

func (h *host) tokenFor(user string) string {
	h.t.Helper()
	var tok map[string]any
	h.mustCLI(&tok, "token", "create", user)
	return tok["secret"].(string)
}

// TestConsole: the console broker end to end on a real guest — login through
// the console, exclusivity across both API listeners, takeover with and
// without VM.Console.Takeover, paste refusal, revocation, the allow policy,
// the CLI, recordings and the audit trail.
func TestConsole(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := newHost(t, "--listen", addr)
	ud := h.userdata("con", `echo "root:$(mkpasswd -m sha512 guestpw):1::::::" >/etc/shadow && echo bulwark-password-set`)
	h.mustCLI(nil, "vm", "create", "con", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "192",
		"--cmdline", "bulwark.hostname=con bulwark.console=login", "--disk", ud+":ro")
	h.mustCLI(nil, "vm", "start", "con")
	h.waitConsole("con", "bulwark-password-set", 1)

	for _, u := range []string{"alice", "bob", "carol"} {
		h.mustCLI(nil, "user", "create", u)
	}
	h.mustCLI(nil, "perm", "grant", "--user", "alice", "--role", "VMOperator", "--path", "/vms/con")
	h.mustCLI(nil, "perm", "grant", "--user", "bob", "--role", "VMOperator", "--path", "/vms/con")
	h.mustCLI(nil, "role", "create", "ConsoleTaker")
	h.mustCLI(nil, "role", "add", "ConsoleTaker", "VM.Console")
	h.mustCLI(nil, "role", "add", "ConsoleTaker", "VM.Console.Takeover")
	var carolPerm map[string]any
	h.mustCLI(&carolPerm, "perm", "grant", "--user", "carol", "--role", "ConsoleTaker", "--path", "/vms/con")
	alice := h.c.WithToken(h.tokenFor("alice"))
	bobTok, carolTok := h.tokenFor("bob"), h.tokenFor("carol")

	// alice logs in through the console and runs a command.
	a := dialConsole(t, alice, "con", client.ConsoleOptions{})
	a.waitControl(h, "status", "holding")
	a.typeSlowly("\r")
	a.waitOutput(h, "login:")
	a.typeSlowly("root\r")
	a.waitOutput(h, "Password:")
	a.typeSlowly("guestpw\r")
	a.typeSlowly("echo $((6*7))-marker\r")
	a.waitOutput(h, "42-marker")

	// bob, over the other listener (HTTPS), is refused with alice's name.
	caPath := filepath.Join(h.dir, "state", "tls", "ca.crt")
	bobTLS, err := client.NewHTTPS("https://"+addr, caPath)
	if err != nil {
		t.Fatal(err)
	}
	b := dialConsole(t, bobTLS.WithToken(bobTok), "con", client.ConsoleOptions{})
	if c := b.waitControl(h, "closed", "held by alice"); c.Code != console.CodeRefused {
		t.Fatalf("bob refused with code %d: %s", c.Code, c.Reason)
	}
	b2 := dialConsole(t, bobTLS.WithToken(bobTok), "con", client.ConsoleOptions{Force: true})
	b2.waitControl(h, "closed", "VM.Console.Takeover")

	// Paste under the default deny policy: refused, typing goes on.
	a.con.Send(context.Background(), []byte("\x1b[200~echo pasted-bracketed\r\x1b[201~"))
	a.waitControl(h, "notice", "bracketed paste")
	a.con.Send(context.Background(), []byte("echo pasted-burst\r"))
	a.waitControl(h, "notice", "keys in one message")
	a.typeSlowly("echo typed-$((1+1))\r")
	a.waitOutput(h, "typed-2")
	if o := a.output(); strings.Contains(o, "pasted-") {
		t.Fatalf("pasted text reached the guest:\n%s", o)
	}

	// carol takes over: alice is told why.
	c := dialConsole(t, h.c.WithToken(carolTok), "con", client.ConsoleOptions{Force: true})
	c.waitControl(h, "status", "holding")
	if ac := a.waitControl(h, "closed", "taken over by carol"); ac.Code != console.CodeTakenOver {
		t.Fatalf("alice closed with code %d", ac.Code)
	}
	// Revoking carol's permission ends her session at once.
	h.mustCLI(nil, "perm", "revoke", carolPerm["id"].(string))
	if cc := c.waitControl(h, "closed", "access revoked"); cc.Code != console.CodeRevoked {
		t.Fatalf("carol closed with code %d", cc.Code)
	}

	// Hostile connections: unauthenticated, cross-origin, oversized frame.
	wsURL := "https://" + addr + "/api/v1/vms/con/console"
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caPath)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, resp, err := websocket.Dial(context.Background(), wsURL, &websocket.DialOptions{HTTPClient: hc}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("unauthenticated upgrade: %v %v", err, resp)
	}
	hdr := http.Header{"Authorization": {"Bearer " + bobTok}, "Origin": {"https://evil.example"}}
	if _, resp, err := websocket.Dial(context.Background(), wsURL, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-origin upgrade: %v %v", err, resp)
	}
	big := dialConsole(t, h.c.WithToken(bobTok), "con", client.ConsoleOptions{})
	big.waitControl(h, "status", "holding")
	big.con.Send(context.Background(), bytes.Repeat([]byte("A"), 100000))
	<-big.done
	if code := client.CloseStatus(big.err); code != int(websocket.StatusMessageTooBig) {
		t.Fatalf("oversized frame closed with %d (%v)", code, big.err)
	}

	// Under clipboard allow a paste goes through; input is recorded too.
	h.mustCLI(nil, "console", "policy", "con", "--clipboard", "allow", "--record-input")
	a2 := dialConsole(t, alice, "con", client.ConsoleOptions{})
	a2.waitControl(h, "status", "holding")
	a2.con.Send(context.Background(), []byte("echo allowed-$((40+2))\r"))
	a2.waitOutput(h, "allowed-42")
	a2.con.Close()
	<-a2.done

	// The CLI with piped input (allow policy: the line arrives in one read).
	cli := exec.Command(binPath, "console", "con", "--linger", "4s")
	cli.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	cli.Stdin = strings.NewReader("echo cli-$((2+3))\r")
	out, err := cli.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cli-5") {
		t.Fatalf("bulwark console: %v\n%s", err, out)
	}

	// Recordings: listed, and alice's first session plays back its output.
	var recs []console.Recording
	h.mustCLI(&recs, "console", "recordings", "--vm", "con")
	var first string
	for _, r := range recs {
		if r.Info != nil && r.Info.User == "alice" {
			first = r.ID
			break
		}
	}
	if first == "" {
		t.Fatalf("no recording of alice's session in %+v", recs)
	}
	castPath := filepath.Join(h.dir, "alice.cast")
	h.mustCLI(nil, "console", "recording", first, "-f", castPath)
	f, err := os.Open(castPath)
	if err != nil {
		t.Fatal(err)
	}
	hdrCast, evs, err := console.ParseCast(f, 100000)
	f.Close()
	if err != nil {
		t.Fatalf("recording does not parse: %v", err)
	}
	var played strings.Builder
	inputs := 0
	for _, e := range evs {
		switch e.Code {
		case "o":
			played.WriteString(e.Data)
		case "i":
			inputs++
		}
	}
	if !strings.Contains(played.String(), "42-marker") || !strings.Contains(played.String(), "login:") {
		t.Fatalf("recording output lacks the session:\n%s", played.String())
	}
	// A second reader: asciinema itself replays the file (it wants a
	// terminal, which script(1) provides).
	if cat, err := exec.Command("script", "-qec", "asciinema cat "+castPath, "/dev/null").CombinedOutput(); err != nil || !strings.Contains(string(cat), "42-marker") {
		t.Fatalf("asciinema cat: %v\n%s", err, cat)
	}
	if inputs != 0 || hdrCast.Bulwark.InputLogged {
		t.Fatalf("input recorded under a policy that does not record it (%d events)", inputs)
	}

	// The audit trail names each step and its recording.
	var audit []map[string]any
	h.mustCLI(&audit, "audit", "list", "--object", "/vms/con")
	seen := map[string]bool{}
	for _, r := range audit {
		act, _ := r["action"].(string)
		if strings.HasPrefix(act, "console") && strings.Contains(r["detail"].(string), ".cast") {
			seen[act+":"+r["result"].(string)] = true
		}
	}
	for _, want := range []string{"consoleOpen:ok", "consoleClose:ok", "consoleRefused:denied", "consoleTakeover:ok"} {
		if !seen[want] {
			t.Errorf("audit lacks %s (has %v)", want, seen)
		}
	}
}
