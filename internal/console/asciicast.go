package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// Header is the first line of an asciicast v2 recording
// (https://docs.asciinema.org/manual/asciicast/v2/). Players ignore keys
// they do not know; Bulwark adds its own under "bulwark".
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Bulwark   *RecordingInfo    `json:"bulwark,omitempty"`
}

// RecordingInfo names what a recording is of.
type RecordingInfo struct {
	Session     string `json:"session"`
	VM          string `json:"vm"`
	User        string `json:"user"`
	Source      string `json:"source,omitempty"`
	InputLogged bool   `json:"input_logged"`
}

// CastEvent is one line after the header: [time, code, data].
type CastEvent struct {
	Time float64
	Code string // "o" output, "i" input, "m" marker
	Data string
}

// Recorder writes one session's asciicast file. Output is recorded as the
// operator saw it (sanitised, hence valid UTF-8); input only when the
// policy says so. The file stops growing at max bytes, with a marker.
type Recorder struct {
	f       *os.File
	w       *bufio.Writer
	start   time.Time
	written int64
	max     int64
	full    bool
	err     error
	line    []byte
}

// CreateRecording creates path (0600, which must not exist) and writes the
// header.
func CreateRecording(path string, h Header, start time.Time, max int64) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	h.Version = 2
	if h.Width <= 0 {
		h.Width = 80
	}
	if h.Height <= 0 {
		h.Height = 24
	}
	h.Timestamp = start.Unix()
	b, err := json.Marshal(h)
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &Recorder{f: f, w: bufio.NewWriterSize(f, 64<<10), start: start, max: max}
	r.write(append(b, '\n'))
	return r, r.err
}

func (r *Recorder) write(b []byte) {
	if r.err != nil {
		return
	}
	_, r.err = r.w.Write(b)
	r.written += int64(len(b))
}

// Event appends one event at time t. Data must be valid UTF-8 (the
// sanitiser guarantees it for output; input is replaced where it is not).
func (r *Recorder) Event(t time.Time, code string, data []byte) {
	if r.full || r.err != nil {
		return
	}
	if r.written+int64(len(data))*2+64 > r.max {
		r.full = true
		data = []byte(fmt.Sprintf("recording stopped: size limit of %d bytes reached", r.max))
		code = "m"
	}
	r.line = append(r.line[:0], '[')
	r.line = strconv.AppendFloat(r.line, t.Sub(r.start).Seconds(), 'f', 6, 64)
	r.line = append(r.line, `, "`...)
	r.line = append(r.line, code...)
	r.line = append(r.line, `", `...)
	r.line = appendJSONString(r.line, data)
	r.line = append(r.line, "]\n"...)
	r.write(r.line)
}

// Flush pushes buffered events to the file.
func (r *Recorder) Flush() error {
	if r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}

// Close flushes, syncs and closes the file.
func (r *Recorder) Close() error {
	err := r.Flush()
	if e := r.f.Sync(); err == nil {
		err = e
	}
	if e := r.f.Close(); err == nil {
		err = e
	}
	r.err = os.ErrClosed // later events are ignored
	return err
}

// Size is the number of bytes written so far.
func (r *Recorder) Size() int64 { return r.written }

// MaxCastLine bounds one line when reading a recording back.
const MaxCastLine = 1 << 20

// ReadHeader reads only the header line of a recording.
func ReadHeader(rd io.Reader) (Header, error) {
	var h Header
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), MaxCastLine)
	if !sc.Scan() {
		if sc.Err() != nil {
			return h, fmt.Errorf("asciicast header: %w", sc.Err())
		}
		return h, errors.New("asciicast: empty file")
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return h, fmt.Errorf("asciicast header: %w", err)
	}
	if h.Version != 2 {
		return h, fmt.Errorf("asciicast: version %d, want 2", h.Version)
	}
	return h, nil
}

// ParseCast reads a whole asciicast v2 stream, at most maxEvents events.
// It checks what a player relies on: a version 2 header with a size, and
// events of [number >= previous, string code, string data].
func ParseCast(rd io.Reader, maxEvents int) (Header, []CastEvent, error) {
	var h Header
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), MaxCastLine)
	if !sc.Scan() {
		return h, nil, errors.New("asciicast: no header line")
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return h, nil, fmt.Errorf("asciicast header: %w", err)
	}
	if h.Version != 2 || h.Width <= 0 || h.Height <= 0 {
		return h, nil, fmt.Errorf("asciicast header: version %d size %dx%d", h.Version, h.Width, h.Height)
	}
	var evs []CastEvent
	last := 0.0
	for n := 2; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if len(evs) >= maxEvents {
			return h, evs, fmt.Errorf("asciicast: more than %d events", maxEvents)
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil || len(raw) != 3 {
			return h, evs, fmt.Errorf("asciicast line %d: not a [time, code, data] array", n)
		}
		var e CastEvent
		if json.Unmarshal(raw[0], &e.Time) != nil || json.Unmarshal(raw[1], &e.Code) != nil || json.Unmarshal(raw[2], &e.Data) != nil {
			return h, evs, fmt.Errorf("asciicast line %d: wrong element types", n)
		}
		if e.Time < last {
			return h, evs, fmt.Errorf("asciicast line %d: time %.6f goes backwards", n, e.Time)
		}
		last = e.Time
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return h, evs, fmt.Errorf("asciicast: %w", err)
	}
	return h, evs, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD. It is json.Marshal's result without the allocation (recording
// sits on the console's output path).
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, "\\ufffd"...)
		case r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
