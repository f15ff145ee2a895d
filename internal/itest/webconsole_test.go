package itest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// TestWebConsole drives the web console in headless Chromium against the
// daemon's HTTPS listener: log in, open a real guest's console, type a
// command and see the guest's reply; a paste is blocked in the page and
// never reaches the guest.
func TestWebConsole(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s missing: the browser test needs Debian's chromium (scripts/test.sh installs it)", chromiumPath)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := newHost(t, "--listen", addr)
	h.createVM("webcon")
	h.mustCLI(nil, "vm", "start", "webcon")
	h.waitConsole("webcon", "bulwark-guest-ready", 1)
	h.mustCLI(nil, "user", "create", "wendy")
	h.mustCLI(nil, "perm", "grant", "--user", "wendy", "--role", "VMOperator", "--path", "/vms")
	passwd := exec.Command(binPath, "user", "passwd", "wendy", "--password-stdin")
	passwd.Env = append(os.Environ(), "BULWARK_SOCKET="+h.socket)
	passwd.Stdin = strings.NewReader("wendy's long passphrase\n")
	if out, err := passwd.CombinedOutput(); err != nil {
		t.Fatalf("passwd: %v %s", err, out)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors", true), // the daemon's own CA
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelC()
	// The first Run starts the browser and must not carry a timeout; every
	// step after it does.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v\npage: notice %q login-error %q vms-error %q vms %q\ndaemon log:\n%s", what, err, text(ctx, "#console-notice"), text(ctx, "#login-error"), text(ctx, "#vms-error"), text(ctx, "#vms"), h.logBuf)
		}
	}
	waitTerm := func(sub string) {
		t.Helper()
		h.waitFor("terminal shows "+sub, 60*time.Second, func() bool {
			v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('.xterm-rows')||{}).textContent||''`))
			return strings.Contains(v, sub)
		})
	}

	do("load the page", chromedp.Navigate("https://"+addr+"/ui/"))
	do("see the login form", chromedp.WaitVisible(chromedp.CSS("#user")))
	do("log in",
		chromedp.SendKeys(chromedp.CSS("#user"), "wendy"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wendy's long passphrase"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(`#vms button[data-vm="webcon"]`)),
	)
	do("open the console",
		chromedp.Click(chromedp.CSS(`#vms button[data-vm="webcon"]`)),
		chromedp.WaitReady(chromedp.CSS(`body[data-console="connected"]`)),
		chromedp.WaitReady(chromedp.CSS(".xterm-helper-textarea")),
	)
	h.waitFor("status names wendy", 30*time.Second, func() bool {
		return strings.Contains(text(ctx, "#console-status"), "wendy (web)")
	})
	do("type", chromedp.Click(chromedp.CSS("#terminal")), typeKeys("echo web-$((3*5))\r"))
	waitTerm("web-15")

	// A paste event carrying a command: the page blocks it, says so, and
	// the guest never sees it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const dt = new DataTransfer();
		dt.setData('text/plain', 'echo pasted-$((7*6))\r');
		const ev = new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});
		document.querySelector('.xterm-helper-textarea').dispatchEvent(ev);
		return true;
	})()`)); err != nil {
		t.Fatalf("paste: %v", err)
	}
	if n := text(ctx, "#console-notice"); !strings.Contains(n, "paste blocked") {
		t.Fatalf("notice after paste: %q", n)
	}
	do("type after paste", typeKeys("echo after-$((2*2))\r"))
	waitTerm("after-4")
	if log := h.consoleLog("webcon"); strings.Contains(log, "pasted-") {
		t.Fatalf("pasted text reached the guest:\n%s", log)
	}
	// The session is held by wendy from the web; a CLI user sees that.
	var sess map[string]any
	h.mustCLI(&sess, "console", "sessions", "webcon")
	if s := fmt.Sprint(sess["holders"]); !strings.Contains(s, "wendy") || !strings.Contains(s, "web") {
		t.Fatalf("sessions: %v", sess)
	}
}

// text returns an element's text ("" if it cannot be read).
func text(ctx context.Context, sel string) string {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _ := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	return v
}

// typeKeys types s into the focused element the way a keyboard does (and
// as Playwright's keyboard.type does): one keyDown carrying the text, then
// keyUp. chromedp's SendKeys sends the text in a separate "char" event,
// which xterm.js receives twice (keypress and input).
func typeKeys(s string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, r := range s {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: string(r), Text: string(r), UnmodifiedText: string(r)}
			if r == '\r' {
				down.Key, down.Code, down.WindowsVirtualKeyCode, down.NativeVirtualKeyCode = "Enter", "Enter", 13, 13
			}
			up := down
			up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, ev); err != nil {
					return err
				}
			}
			time.Sleep(30 * time.Millisecond) // a fast typist
		}
		return nil
	})
}
