package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// RFC 5424 fields Bulwark uses. Facility authpriv (10): security and
// authorization messages, which syslog daemons keep out of world-readable
// files.
const (
	syslogFacility  = 10
	sevWarning      = 4
	sevNotice       = 5
	syslogAppName   = "bulwark"
	syslogTimestamp = "2006-01-02T15:04:05.000000Z07:00" // RFC 5424 allows 6 fraction digits
)

// AppendSyslog appends one RFC 5424 message to dst, without a trailer:
//
//	<PRI>1 TIMESTAMP HOSTNAME bulwark PROCID MSGID - MSG
//
// PRI is facility authpriv with severity sev; TIMESTAMP is t in UTC to the
// microsecond; HOSTNAME, PROCID and MSGID are cut to their RFC 5424
// lengths with bytes outside printable US-ASCII replaced by '_', and "-"
// when empty. There is no structured data; MSG is msg as given (Bulwark
// sends JSON, which receivers parse and which reads back as anchors).
func AppendSyslog(dst []byte, sev int, t time.Time, hostname, procID, msgID string, msg []byte) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(syslogFacility*8+sev), 10)
	dst = append(dst, ">1 "...)
	dst = t.UTC().AppendFormat(dst, syslogTimestamp)
	dst = append(dst, ' ')
	dst = appendSyslogName(dst, hostname, 255)
	dst = append(dst, ' ')
	dst = append(dst, syslogAppName...)
	dst = append(dst, ' ')
	dst = appendSyslogName(dst, procID, 128)
	dst = append(dst, ' ')
	dst = appendSyslogName(dst, msgID, 32)
	dst = append(dst, " - "...)
	return append(dst, msg...)
}

func appendSyslogName(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	for i := 0; i < len(s) && i < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendSyslogRecord appends r as an RFC 5424 message (see AppendSyslog):
// MSGID is the action, severity warning for a result of denied or failed
// and notice otherwise, and MSG the record's JSON form as ExportJSONL
// writes it, which carries every field and so can be verified like an
// export.
func AppendSyslogRecord(dst []byte, r Record, hostname string) []byte {
	sev := sevNotice
	if r.Result == ResultDenied || r.Result == ResultFailed {
		sev = sevWarning
	}
	var msg bytes.Buffer
	enc := json.NewEncoder(&msg)
	enc.SetEscapeHTML(false) // as in ExportJSONL: fields are already escaped
	enc.Encode(r)            // a Record's fields cannot fail to encode
	return AppendSyslog(dst, sev, r.Time, hostname, "", r.Action, bytes.TrimSuffix(msg.Bytes(), []byte("\n")))
}

// ExportSyslog writes the records f selects to w as RFC 5424 messages
// (AppendSyslogRecord), one per line, in ascending Seq order.
func (l *Log) ExportSyslog(ctx context.Context, w io.Writer, f Filter, hostname string) error {
	f.Desc = false
	buf := make([]byte, 0, 1024)
	return l.scan(ctx, f, f.Limit, func(r Record) error {
		buf = append(AppendSyslogRecord(buf[:0], r, hostname), '\n')
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("audit: export seq %d: %w", r.Seq, err)
		}
		return nil
	})
}

// SyslogConfig configures a syslog sink.
type SyslogConfig struct {
	// Addr is where to send: an absolute path is a Unix datagram socket
	// (/dev/log); "udp://HOST:PORT" and "tcp://HOST:PORT" are remote
	// receivers (TCP with RFC 6587 octet-counting framing).
	Addr      string
	PublicKey ed25519.PublicKey // the log's, sent with each checkpoint
	Hostname  string            // HOSTNAME field; os.Hostname when empty
	Queue     int               // DefaultRemoteQueue when zero
	Log       *slog.Logger      // drops are logged here; slog.Default when nil
}

// NewSyslogSink returns a sink that sends each checkpoint as an RFC 5424
// message (MSGID "checkpoint", severity notice, MSG the checkpoint's
// anchor JSON with the log's public key). It connects on first use and
// reconnects after an error; a message that cannot be sent is dropped and
// logged.
func NewSyslogSink(cfg SyslogConfig) (*RemoteSink, error) {
	network, addr, err := syslogAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	s := &syslogConn{network: network, addr: addr}
	pid := strconv.Itoa(os.Getpid())
	deliver := func(ctx context.Context, a Anchor) error {
		msg := AppendSyslog(nil, sevNotice, a.Time, cfg.Hostname, pid, "checkpoint", remoteJSON(a, cfg.PublicKey, cfg.Hostname))
		return s.send(ctx, msg)
	}
	return newRemoteSink("syslog "+cfg.Addr, cfg.Queue, cfg.Log, deliver), nil
}

func syslogAddr(s string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(s, "/"):
		return "unixgram", s, nil
	case strings.HasPrefix(s, "udp://"):
		return "udp", strings.TrimPrefix(s, "udp://"), nil
	case strings.HasPrefix(s, "tcp://"):
		return "tcp", strings.TrimPrefix(s, "tcp://"), nil
	}
	return "", "", fmt.Errorf("audit: syslog address %q: want /path/to/socket, udp://HOST:PORT or tcp://HOST:PORT", s)
}

// syslogConn is the sink's connection; only the sink's goroutine uses it.
type syslogConn struct {
	network, addr string
	c             net.Conn
}

const syslogTimeout = 5 * time.Second

// send writes msg, reconnecting once if the connection had failed.
func (s *syslogConn) send(ctx context.Context, msg []byte) error {
	if s.network == "tcp" {
		msg = append(strconv.AppendInt(nil, int64(len(msg)), 10), append([]byte{' '}, msg...)...)
	}
	var err error
	for try := 0; try < 2; try++ {
		if s.c == nil {
			d := net.Dialer{Timeout: syslogTimeout}
			if s.c, err = d.DialContext(ctx, s.network, s.addr); err != nil {
				s.c = nil
				continue
			}
		}
		s.c.SetWriteDeadline(time.Now().Add(syslogTimeout))
		if _, err = s.c.Write(msg); err == nil {
			return nil
		}
		s.c.Close()
		s.c = nil
	}
	return fmt.Errorf("syslog %s %s: %w", s.network, s.addr, err)
}
