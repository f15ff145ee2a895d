package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// maxQMPLine bounds one QMP message. QEMU's own replies are small; the bound
// only matters if the process has been subverted by its guest.
const maxQMPLine = 1 << 20

// QMP is a client of the QEMU Machine Protocol on a Unix socket. Commands are
// serialised: QMP answers in order, so one in flight at a time is enough.
type QMP struct {
	conn    net.Conn
	cmdMu   sync.Mutex // one command in flight
	replies chan qmpMsg
	events  chan Event
	done    chan struct{} // closed when the reader ends (QEMU gone or Close)
	errMu   sync.Mutex
	err     error
}

// Event is an asynchronous QMP event such as SHUTDOWN or STOP.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

type qmpMsg struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	QMP   json.RawMessage `json:"QMP"`
}

// DialQMP connects, reads the greeting and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	q := &QMP{conn: conn, replies: make(chan qmpMsg, 1), events: make(chan Event, 64), done: make(chan struct{})}
	br := bufio.NewReaderSize(conn, 64<<10)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	// A cancelled context without a deadline must also end the wait.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	greet, err := readMsg(br)
	stop()
	if err != nil || greet.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp %s: no greeting: %v", path, err)
	}
	conn.SetReadDeadline(time.Time{})
	go q.readLoop(br)
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		q.Close()
		return nil, fmt.Errorf("qmp %s: capabilities: %w", path, err)
	}
	return q, nil
}

func readMsg(br *bufio.Reader) (qmpMsg, error) {
	var m qmpMsg
	line, err := readLine(br)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: bad message: %w", err)
	}
	return m, nil
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxQMPLine {
			return nil, errors.New("qmp: message too long")
		}
		if !isPrefix {
			return buf, nil
		}
	}
}

func (q *QMP) readLoop(br *bufio.Reader) {
	defer close(q.done)
	// Once the reader stops (EOF, a bad or oversized message) nothing reads
	// the socket again: close it so QEMU's writes fail instead of blocking.
	defer q.conn.Close()
	for {
		m, err := readMsg(br)
		if err != nil {
			q.setErr(err)
			return
		}
		if m.Event != "" {
			select {
			case q.events <- Event{Name: m.Event, Data: m.Data}:
			default: // a slow consumer loses events, never blocks replies
			}
			continue
		}
		select {
		case q.replies <- m:
		default:
			// A protocol violation: drop the queued reply too, so no
			// command can take an answer to something it never asked.
			select {
			case <-q.replies:
			default:
			}
			q.setErr(errors.New("qmp: unsolicited reply"))
			return
		}
	}
}

func (q *QMP) setErr(err error) {
	q.errMu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.errMu.Unlock()
}

// Events delivers asynchronous events; it is never closed, watch Done.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the connection ends.
func (q *QMP) Done() <-chan struct{} { return q.done }

// Execute runs one command; out, if non-nil, receives the "return" value.
func (q *QMP) Execute(ctx context.Context, cmd string, args any, out any) error {
	return q.execute(ctx, cmd, args, out, nil)
}

// execute runs one command, sending oob (SCM_RIGHTS, qmp_fd.go) with its
// bytes when it is not nil.
func (q *QMP) execute(ctx context.Context, cmd string, args any, out any, oob []byte) error {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// Always set: a zero deadline clears the one an earlier command left,
	// which would otherwise fail every later write once it passed.
	dl, _ := ctx.Deadline()
	q.conn.SetWriteDeadline(dl)
	if err := q.write(append(b, '\n'), oob); err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	reply := func(m qmpMsg) error {
		if m.Error != nil {
			return &QMPError{Cmd: cmd, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		if out != nil && m.Return != nil {
			return json.Unmarshal(m.Return, out)
		}
		return nil
	}
	select {
	case m := <-q.replies:
		return reply(m)
	case <-q.done:
		// QEMU answers quit and then closes: a reply queued before the
		// reader ended still counts.
		select {
		case m := <-q.replies:
			return reply(m)
		default:
		}
		q.errMu.Lock()
		err := q.err
		q.errMu.Unlock()
		return fmt.Errorf("qmp %s: connection closed: %v", cmd, err)
	case <-ctx.Done():
		// The reply may still arrive; drop the connection so the next
		// command cannot read a stale answer.
		q.conn.Close()
		return fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// QMPError is QEMU's refusal of a command: callers branch on Class
// ("DeviceNotFound", "GenericError", ...). Desc is QEMU's text.
type QMPError struct {
	Cmd, Class, Desc string
}

func (e *QMPError) Error() string { return fmt.Sprintf("qmp %s: %s: %s", e.Cmd, e.Class, e.Desc) }

// Close drops the connection.
func (q *QMP) Close() error { return q.conn.Close() }
