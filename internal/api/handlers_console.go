package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// MaxConsoleMessage bounds one WebSocket message from a console client:
// keystrokes are a few bytes; a bigger frame is refused (close 1009).
const MaxConsoleMessage = 4096

// consoleWriteTimeout drops a client that stops reading: its session ends
// rather than holding the console.
const consoleWriteTimeout = 15 * time.Second

// SetConsole serves VM consoles through b with policy defaults def.
func (s *Server) SetConsole(b *console.Broker, def console.Policy) {
	s.console = b
	s.consoleDefaults = def
}

func needConsole(h func(*Server, http.ResponseWriter, *http.Request) error) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.console == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "the console broker is not running"}
		}
		return h(s, w, r)
	}
}

// callerCheck returns a function that re-authenticates the request's
// credentials and checks priv on obj: a session calls it again whenever
// access changes, so a revoked token, a disabled user or a removed
// permission ends it.
func (s *Server) callerCheck(r *http.Request, priv, obj string) func() error {
	uid, cred := CallerFrom(r.Context()).UID, credentials(r)
	return func() error {
		_, err := s.check(uid, cred, priv, obj)
		return err
	}
}

func (s *Server) consoleWS(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := s.mgr.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if v.State != vm.Running && v.State != vm.Paused {
		return &httpError{code: http.StatusConflict, msg: fmt.Sprintf("vm %q is %s: its console is available while it runs", name, v.State)}
	}
	obj := vmObj(r)
	q := r.URL.Query()
	caller := CallerFrom(r.Context())
	req := console.OpenRequest{
		VM: name, User: caller.User, Source: caller.Source, Client: clientKind(r),
		Force: q.Get("force") == "1", Wait: q.Get("wait") == "1",
		Policy:     console.PolicyFor(v.Spec.Console, s.consoleDefaults),
		Authorized: s.callerCheck(r, PrivVMConsole, obj),
	}
	if req.Force {
		req.CanTakeover = s.callerCheck(r, PrivVMConsoleTakeover, obj)() == nil
	}
	ServeConsoleWS(w, r, s.console, req)
	return nil
}

// ServeConsoleWS upgrades an authorized request to WebSocket and serves
// one console session of b until it ends. It is the whole console data
// path, exported for benchmarks that measure it without a VM.
func ServeConsoleWS(w http.ResponseWriter, r *http.Request, b *console.Broker, req console.OpenRequest) {
	// The server's read and write deadlines stay on a hijacked connection;
	// a console session lasts as long as its policy allows.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	// Accept refuses a cross-origin upgrade (Origin must name this host):
	// the session cookie would otherwise let any web page open a console.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{})
	if err != nil {
		return // Accept has answered (403 for a foreign Origin)
	}
	c.SetReadLimit(MaxConsoleMessage)
	sess, err := b.Open(req)
	if err != nil {
		b, _ := json.Marshal(map[string]any{"type": "closed", "reason": err.Error(), "code": console.CodeRefused})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Write(ctx, websocket.MessageText, b)
		cancel()
		c.Close(console.CodeRefused, closeReason(err.Error()))
		return
	}
	serveConsole(c, sess)
}

// clientKind names the client for the holder list: "web" for browsers
// (they send Origin), else "cli".
func clientKind(r *http.Request) string {
	if r.Header.Get("Origin") != "" {
		return "web"
	}
	return "cli"
}

// closeReason fits a WebSocket close reason (123 bytes at most).
func closeReason(s string) string {
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// serveConsole pumps one session: the broker's messages to the client,
// the client's keystrokes to the broker, until either side ends it.
func serveConsole(c *websocket.Conn, sess *console.Session) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := sess.Next(ctx)
			if err != nil {
				break
			}
			typ := websocket.MessageBinary
			if m.Text {
				typ = websocket.MessageText
			}
			wctx, wcancel := context.WithTimeout(ctx, consoleWriteTimeout)
			err = c.Write(wctx, typ, m.Data)
			wcancel()
			if err != nil {
				sess.Close("the client stopped reading")
				c.CloseNow()
				return
			}
		}
		msg, code := sess.CloseReason()
		c.Close(websocket.StatusCode(code), closeReason(msg))
	}()
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			switch {
			case errors.As(err, &ce) && (ce.Code == websocket.StatusNormalClosure || ce.Code == websocket.StatusGoingAway):
				sess.Close("the client disconnected")
			case errors.Is(err, io.EOF), errors.Is(err, context.Canceled):
				sess.Close("the client disconnected")
			default:
				sess.Close("connection error: " + err.Error())
			}
			break
		}
		if typ == websocket.MessageText {
			var ctl struct {
				Type       string
				Cols, Rows int
			}
			if json.Unmarshal(data, &ctl) == nil && ctl.Type == "resize" {
				sess.Resize(ctl.Cols, ctl.Rows)
			}
			continue
		}
		if err := sess.Input(data); errors.Is(err, console.ErrClosed) {
			break
		}
	}
	<-done
}

func (s *Server) consoleSessions(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := s.mgr.Get(r.Context(), name)
	if err != nil {
		return err
	}
	st := s.console.Status(name)
	return writeJSON(w, http.StatusOK, map[string]any{"vm": name, "holders": st.Holders, "waiting": st.Waiting,
		"policy": console.PolicyFor(v.Spec.Console, s.consoleDefaults).View()})
}

func (s *Server) setConsolePolicy(w http.ResponseWriter, r *http.Request) error {
	var p vm.ConsolePolicy
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	v, err := s.mgr.SetConsolePolicy(r.Context(), r.PathValue("name"), &p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) listRecordings(w http.ResponseWriter, r *http.Request) error {
	recs, err := s.console.Recordings()
	if err != nil {
		return err
	}
	vmName, user := r.URL.Query().Get("vm"), r.URL.Query().Get("user")
	out := recs[:0]
	for _, rec := range recs {
		if rec.Info != nil && (vmName != "" && rec.Info.VM != vmName || user != "" && rec.Info.User != user) {
			continue
		}
		out = append(out, rec)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRecording(w http.ResponseWriter, r *http.Request) error {
	path := s.console.RecordingPath(r.PathValue("id"))
	if path == "" {
		return badRequest("id", "%q is not a console session id", r.PathValue("id"))
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &httpError{code: http.StatusNotFound, msg: "no recording " + r.PathValue("id")}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Content-Disposition", "attachment; filename=\""+r.PathValue("id")+".cast\"")
	_, err = io.Copy(w, f)
	return err
}

// ConsoleAuditor turns console events into audit records: open, close,
// takeover and refusal, each naming the recording file.
func ConsoleAuditor(log *audit.Log, report func(error)) func(console.Event) {
	return func(ev console.Event) {
		if log == nil {
			return
		}
		result := audit.ResultOK
		if ev.Kind == "refused" {
			result = audit.ResultDenied
		}
		detail := ev.Detail
		if ev.Recording != "" {
			detail += "; recording " + ev.Recording
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := log.Append(ctx, audit.Record{Time: time.Now().UTC(), User: ev.User,
			Action: "console" + strings.ToUpper(ev.Kind[:1]) + ev.Kind[1:], Object: "/vms/" + ev.VM,
			Result: result, Source: ev.Source, Detail: "session " + ev.Session + ": " + detail}); err != nil && report != nil {
			report(err)
		}
	}
}
