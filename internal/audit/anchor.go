package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// AnchorType says what an anchor pins.
type AnchorType string

const (
	// AnchorHead pins one record: record Seq had hash Hash when it was
	// appended. It carries no signature, so it is only as trustworthy as
	// the place it is kept.
	AnchorHead AnchorType = "head"
	// AnchorCheckpoint is a signed checkpoint (Time and Sig set), verifiable
	// with the log's public key wherever it is kept.
	AnchorCheckpoint AnchorType = "checkpoint"
	// anchorTorn is written by OpenAnchorFile after a line that a crash cut
	// short, so that a reader knows the line before it is torn rather than
	// forged. It pins nothing.
	anchorTorn AnchorType = "torn"
)

// Anchor is a record's (Seq, Hash) head or a signed checkpoint as it is
// written outside the database: to an append-only file, to syslog, to an
// HTTPS receiver. Its JSON form is one line of an anchor file:
//
//	{"t":"head","seq":12,"hash":"<64 hex>"}
//	{"t":"checkpoint","seq":100,"hash":"<64 hex>","time":"<RFC 3339>","sig":"<base64>"}
//
// Receivers may add fields (a remote sink adds "key" and "host"); readers
// ignore fields they do not know.
type Anchor struct {
	Type AnchorType `json:"t"`
	Seq  uint64     `json:"seq"`
	Hash string     `json:"hash"`
	Time time.Time  `json:"time,omitzero"` // checkpoints only
	Sig  []byte     `json:"sig,omitempty"` // checkpoints only; Ed25519, base64 in JSON
}

// HeadAnchor is the anchor for record r.
func HeadAnchor(r Record) Anchor { return Anchor{Type: AnchorHead, Seq: r.Seq, Hash: r.Hash} }

// CheckpointAnchor is the anchor for checkpoint c.
func CheckpointAnchor(c Checkpoint) Anchor {
	return Anchor{Type: AnchorCheckpoint, Seq: c.Seq, Hash: c.Hash, Time: c.Time.UTC(), Sig: c.Sig}
}

// Checkpoint returns the checkpoint a carries; meaningful only for an
// AnchorCheckpoint.
func (a Anchor) Checkpoint() Checkpoint {
	return Checkpoint{Seq: a.Seq, Hash: a.Hash, Time: a.Time, Sig: a.Sig}
}

// AppendLine appends a's anchor-file line, newline included, to dst. It is
// written by hand rather than with encoding/json because a head line is
// written for every record: the fields are digits, hex, RFC 3339 and
// base64, none of which JSON escapes.
func (a Anchor) AppendLine(dst []byte) []byte {
	dst = append(dst, `{"t":"`...)
	dst = append(dst, a.Type...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, a.Seq, 10)
	dst = append(dst, `,"hash":"`...)
	dst = append(dst, a.Hash...)
	dst = append(dst, '"')
	if a.Type == AnchorCheckpoint {
		dst = append(dst, `,"time":"`...)
		dst = a.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, `","sig":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, a.Sig)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

// maxAnchorLine bounds one line of an anchor file; a checkpoint line is
// about 250 bytes, a syslog-stored one a little more.
const maxAnchorLine = 4096

// AnchorLine is an anchor and where it was read.
type AnchorLine struct {
	Anchor
	Line int // from 1
}

// BadLine is a line of an anchor file that holds no anchor.
type BadLine struct {
	Line   int
	Reason string
}

// AnchorSet is what ReadAnchors found in one anchor file or stream.
type AnchorSet struct {
	Name    string       // the file, as named in problems
	Anchors []AnchorLine // in file order
	// Bad lines are neither anchors nor the torn end of a crash: something
	// other than Bulwark wrote them, or the file is corrupt.
	Bad []BadLine
	// Torn counts lines a crash cut short: a last line without its
	// newline, or a line OpenAnchorFile marked torn when it reopened the
	// file. They are expected after a power loss and are not problems.
	Torn int
}

// ReadAnchors reads anchor lines from r, naming them name. It returns an
// error only when r fails; what is wrong with the content is in the set.
//
// A line is an anchor when, from its first '{', it is a JSON object whose
// "t" is "head" or "checkpoint", with a Seq of 1 or more and a Hash of 64
// lowercase hex digits (and for a checkpoint a time and a 64-byte sig).
// Text before the first '{' is skipped so that lines as a syslog receiver
// stores them ("Mar  1 12:00:00 host bulwark[1]: {...}") read as anchors.
// Blank lines are ignored. Signatures are not checked here.
func ReadAnchors(r io.Reader, name string) (AnchorSet, error) {
	set := AnchorSet{Name: name}
	br := bufio.NewReaderSize(r, 64<<10)
	lastBad := -1 // index in set.Bad of the line just before, if it was bad
	for n := 1; ; n++ {
		line, long, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return set, fmt.Errorf("audit: read anchors %s: %w", name, err)
		}
		eof := errors.Is(err, io.EOF)
		if eof && len(line) == 0 && !long {
			return set, nil
		}
		torn := eof // a last line without its newline
		a, reason := parseAnchorLine(line, long)
		switch {
		case reason == "" && a.Type == anchorTorn:
			if lastBad >= 0 { // the marker vouches for the line before it
				set.Bad = set.Bad[:lastBad]
				set.Torn++
			}
			lastBad = -1
		case reason == "":
			set.Anchors = append(set.Anchors, AnchorLine{Anchor: a, Line: n})
			lastBad = -1
		case reason == "blank":
			lastBad = -1
		case torn:
			set.Torn++
		default:
			lastBad = len(set.Bad)
			set.Bad = append(set.Bad, BadLine{Line: n, Reason: reason})
		}
		if eof {
			return set, nil
		}
	}
}

// readLine returns the next line without its newline, at most
// maxAnchorLine bytes of it (long reports that more were skipped), and
// io.EOF when the line was not ended by a newline.
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	// Fast path: a whole line in the buffer is returned without a copy; it
	// is valid until the next read, and parseAnchorLine copies what it keeps.
	if frag, err := br.ReadSlice('\n'); err == nil {
		return frag[:len(frag)-1], false, nil
	} else if !errors.Is(err, bufio.ErrBufferFull) {
		return frag, false, err
	} else {
		line = append(line, frag...)
	}
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxAnchorLine+1 {
			long = true
		} else {
			line = append(line, frag...)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, long, err
		}
	}
}

// parseAnchorLine returns the anchor on line, or why there is none:
// "blank" for a line of white space, another reason for a bad line.
func parseAnchorLine(line []byte, long bool) (Anchor, string) {
	if long {
		return Anchor{}, fmt.Sprintf("longer than %d bytes", maxAnchorLine)
	}
	if a, ok := parseHeadLine(line); ok {
		return a, ""
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return Anchor{}, "blank"
	}
	i := bytes.IndexByte(line, '{')
	if i < 0 {
		return Anchor{}, "no JSON object"
	}
	var a Anchor
	if err := json.Unmarshal(bytes.TrimRight(line[i:], " \t\r"), &a); err != nil {
		return Anchor{}, "not an anchor: " + truncateReason(err.Error())
	}
	switch a.Type {
	case anchorTorn:
		return a, ""
	case AnchorHead:
		if !a.Time.IsZero() || a.Sig != nil {
			return Anchor{}, "head anchor with a time or sig"
		}
	case AnchorCheckpoint:
		if a.Time.IsZero() || len(a.Sig) == 0 {
			return Anchor{}, "checkpoint anchor without time or sig"
		}
	default:
		return Anchor{}, fmt.Sprintf("unknown anchor type %.32q", a.Type)
	}
	if a.Seq == 0 {
		return Anchor{}, "seq 0"
	}
	if !isHexHash(a.Hash) {
		return Anchor{}, "hash is not 64 lowercase hex digits"
	}
	return a, ""
}

// parseHeadLine reads a head line exactly as AppendLine writes it, which is
// nearly every line of an anchor file, without encoding/json: a start-up
// reads one per record. Anything else is left to the JSON path.
func parseHeadLine(line []byte) (Anchor, bool) {
	const pre, mid, post = `{"t":"head","seq":`, `,"hash":"`, `"}`
	rest, ok := bytes.CutPrefix(line, []byte(pre))
	if !ok {
		return Anchor{}, false
	}
	i := 0
	for i < len(rest) && i < 20 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil || seq == 0 || rest[0] == '0' {
		return Anchor{}, false
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(mid))
	if !ok || len(rest) != 64+len(post) || string(rest[64:]) != post || !isHexHash(string(rest[:64])) {
		return Anchor{}, false
	}
	return Anchor{Type: AnchorHead, Seq: seq, Hash: string(rest[:64])}, true
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// truncateReason keeps a decoder's message short: it may quote the input.
func truncateReason(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
