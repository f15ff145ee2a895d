package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// detachKey is Ctrl-] (as in telnet and virsh console): it never reaches
// the guest.
const detachKey = 0x1d

// exitError ends the CLI with a code after the message was printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func consoleCmd(g *globals) *cobra.Command {
	var o client.ConsoleOptions
	var linger time.Duration
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a VM's serial console (one user at a time; Ctrl-] detaches)",
		Long: `Attach the terminal to a running VM's serial console through the daemon's
console broker. The console admits one user at a time (the VM's policy may
allow more); a second user is refused with the holder's name unless they
wait (--wait) or take over (--force, needs VM.Console.Takeover). Every
session is recorded. Under the default clipboard policy pasted input is
refused: keep typing.

Press Ctrl-] to detach. The terminal is restored on exit and on SIGTERM,
SIGHUP and SIGINT. When standard input is not a terminal, input is sent as
it is read and the session detaches --linger after its end.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return attachConsole(cmd.Context(), g, args[0], o, linger)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Force, "force", false, "take the console over from its holder (needs VM.Console.Takeover)")
	f.BoolVar(&o.Wait, "wait", false, "wait in line if the console is held")
	f.DurationVar(&linger, "linger", 2*time.Second, "with non-terminal input: how long to keep printing output after the input ends")
	cmd.AddCommand(consoleRecordingsCmd(g), consoleRecordingCmd(g), consoleSessionsCmd(g), consolePolicyCmd(g))
	return cmd
}

func attachConsole(ctx context.Context, g *globals, name string, o client.ConsoleOptions, linger time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	con, err := g.client().DialConsole(ctx, name, o)
	if err != nil {
		return err
	}
	defer con.Close()
	stdout := os.Stdout
	fd := int(os.Stdin.Fd())
	tty := term.IsTerminal(fd)
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw terminal: %w", err)
		}
		// Bracketed-paste mode makes the terminal mark pastes, which the
		// broker refuses under clipboard deny; it is switched off again on
		// every way out.
		stdout.WriteString("\x1b[?2004h")
		restore := func() {
			stdout.WriteString("\x1b[?2004l")
			term.Restore(fd, old)
		}
		defer restore()
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
		defer signal.Stop(sigs)
		go func() {
			if _, ok := <-sigs; ok {
				restore()
				os.Exit(130)
			}
		}()
		if w, h, err := term.GetSize(fd); err == nil {
			con.Resize(ctx, w, h)
		}
	}
	say := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[bulwark: "+format+"]\r\n", a...)
	}
	say("console of %s; Ctrl-] detaches", name)

	detached := make(chan struct{})
	go func() {
		defer close(detached)
		buf := make([]byte, 1024)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				p := buf[:n]
				if i := bytes.IndexByte(p, detachKey); i >= 0 {
					if i > 0 {
						con.Send(ctx, p[:i])
					}
					return
				}
				if err := con.Send(ctx, p); err != nil {
					return
				}
			}
			if err != nil {
				if !tty {
					time.Sleep(linger)
				}
				return
			}
		}
	}()
	go func() {
		<-detached
		cancel()
	}()
	for {
		out, ctl, err := con.Read(ctx)
		if err != nil {
			select {
			case <-detached:
				say("detached")
				return nil
			default:
			}
			if code := client.CloseStatus(err); code == 1000 {
				return nil
			}
			return fmt.Errorf("console connection: %w", err)
		}
		if out != nil {
			stdout.Write(out)
			continue
		}
		switch ctl.Type {
		case "status":
			say("%s", describeStatus(ctl))
		case "notice":
			say("%s", ctl.Message)
		case "closed":
			say("session ended: %s", ctl.Reason)
			if ctl.Code == console.CodeNormal {
				return nil
			}
			return exitError{code: 1}
		}
	}
}

func describeStatus(c *client.ConsoleControl) string {
	var b strings.Builder
	if c.State == "waiting" {
		b.WriteString("waiting for the console")
	} else {
		b.WriteString("you hold the console")
	}
	var hs []string
	for _, h := range c.Holders {
		hs = append(hs, fmt.Sprintf("%s (%s) since %s", h.User, h.Client, h.Since))
	}
	if len(hs) > 0 {
		b.WriteString("; held by " + strings.Join(hs, ", "))
	}
	var ws []string
	for _, w := range c.Waiting {
		ws = append(ws, w.User)
	}
	if len(ws) > 0 {
		b.WriteString("; waiting: " + strings.Join(ws, ", "))
	}
	if c.Policy != nil {
		fmt.Fprintf(&b, "; clipboard %v, session %s", c.Policy["clipboard"], c.Session)
	}
	return b.String()
}

func consoleRecordingsCmd(g *globals) *cobra.Command {
	var vmName, user string
	cmd := &cobra.Command{
		Use: "recordings", Short: "List console session recordings (needs Audit.Read)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/console/recordings"
			q := []string{}
			if vmName != "" {
				q = append(q, "vm="+vmName)
			}
			if user != "" {
				q = append(q, "user="+user)
			}
			if len(q) > 0 {
				path += "?" + strings.Join(q, "&")
			}
			var recs []console.Recording
			if err := g.client().Do(cmd.Context(), "GET", path, nil, &recs); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), recs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SESSION\tVM\tUSER\tSTARTED\tBYTES\tACTIVE")
				for _, r := range recs {
					vmN, u := "?", "?"
					if r.Info != nil {
						vmN, u = r.Info.VM, r.Info.User
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%v\n", r.ID, vmN, u, r.Started.Format(time.RFC3339), r.Size, r.Active)
				}
			})
		},
	}
	cmd.Flags().StringVar(&vmName, "vm", "", "only this VM's sessions")
	cmd.Flags().StringVar(&user, "user", "", "only this user's sessions")
	return cmd
}

func consoleRecordingCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use: "recording SESSION", Short: "Fetch one recording (asciicast v2; play it with asciinema play FILE)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Raw(cmd.Context(), "GET", "/api/v1/console/recordings/"+args[0])
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return os.WriteFile(out, b, 0o600)
		},
	}
	cmd.Flags().StringVarP(&out, "file", "f", "", "write to this file (0600) instead of standard output")
	return cmd
}

func consoleSessionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "sessions NAME", Short: "Show who holds and who waits for a VM's console", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st struct {
				VM      string             `json:"vm"`
				Holders []console.Party    `json:"holders"`
				Waiting []console.Party    `json:"waiting"`
				Policy  console.PolicyView `json:"policy"`
			}
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+args[0]+"/console/sessions", nil, &st); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), st, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ROLE\tUSER\tCLIENT\tSINCE")
				for _, h := range st.Holders {
					fmt.Fprintf(tw, "holder\t%s\t%s\t%s\n", h.User, h.Client, h.Since.Format(time.RFC3339))
				}
				for _, w := range st.Waiting {
					fmt.Fprintf(tw, "waiting\t%s\t%s\t%s\n", w.User, w.Client, w.Since.Format(time.RFC3339))
				}
				p := st.Policy
				fmt.Fprintf(tw, "policy: max_sessions=%d clipboard=%s record_input=%v idle_timeout=%s max_duration=%s\n",
					p.MaxSessions, p.Clipboard, p.RecordInput, p.IdleTimeout, p.MaxDuration)
			})
		},
	}
}

func consolePolicyCmd(g *globals) *cobra.Command {
	var p vm.ConsolePolicy
	var reset bool
	cmd := &cobra.Command{
		Use:   "policy NAME",
		Short: "Change a VM's console policy (needs VM.Config); unset flags keep their value",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			cur := &vm.ConsolePolicy{}
			if !reset {
				v, err := c.GetVM(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if v.Spec.Console != nil {
					cur = v.Spec.Console
				}
			}
			fl := cmd.Flags()
			if fl.Changed("max-sessions") {
				cur.MaxSessions = p.MaxSessions
			}
			if fl.Changed("clipboard") {
				cur.Clipboard = p.Clipboard
			}
			if fl.Changed("record-input") {
				cur.RecordInput = p.RecordInput
			}
			if fl.Changed("idle-timeout") {
				cur.IdleTimeout = p.IdleTimeout
			}
			if fl.Changed("max-duration") {
				cur.MaxDuration = p.MaxDuration
			}
			if fl.Changed("input-max-keys") {
				cur.InputMaxKeys = p.InputMaxKeys
			}
			if fl.Changed("input-burst") {
				cur.InputBurst = p.InputBurst
			}
			if fl.Changed("input-rate") {
				cur.InputRate = p.InputRate
			}
			var v vm.VM
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/vms/"+args[0]+"/console/policy", cur, &v); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v.Spec.Console, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "console policy of %s updated (applies to new sessions)\n", args[0])
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.MaxSessions, "max-sessions", 1, "users who may hold the console at once (1..8)")
	f.StringVar(&p.Clipboard, "clipboard", "deny", "deny or allow pasted input")
	f.BoolVar(&p.RecordInput, "record-input", false, "record keystrokes too (they may contain passwords)")
	f.StringVar(&p.IdleTimeout, "idle-timeout", "", "end sessions with no input for this long (Go duration)")
	f.StringVar(&p.MaxDuration, "max-duration", "", "maximum session length (Go duration)")
	f.IntVar(&p.InputMaxKeys, "input-max-keys", 0, "keys allowed in one message under clipboard deny")
	f.IntVar(&p.InputBurst, "input-burst", 0, "burst of keys allowed under clipboard deny")
	f.Float64Var(&p.InputRate, "input-rate", 0, "sustained keys per second allowed under clipboard deny")
	f.BoolVar(&reset, "reset", false, "start from the daemon's defaults instead of the current policy")
	return cmd
}
