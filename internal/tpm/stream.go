package tpm

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// headerSize is the TPM 2.0 response header: tag (2), size (4), code (4).
const headerSize = 10

// maxResponse bounds a response's declared size (TPM 2.0 responses are at
// most a few KiB; 64 KiB leaves room) so that a confused peer cannot make us
// allocate at will.
const maxResponse = 64 << 10

// streamTransport sends raw TPM 2.0 commands over one stream connection, as
// swtpm's server channel expects. Unlike go-tpm's socket transports it reads
// the response by its declared size, so a response split across reads is
// not truncated. Callers serialise Send (chip holds its mu).
type streamTransport struct {
	conn net.Conn
}

// Send writes cmd and returns the whole response.
func (s *streamTransport) Send(cmd []byte) ([]byte, error) {
	if err := s.conn.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("send command: %w", err)
	}
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(s.conn, hdr); err != nil {
		return nil, fmt.Errorf("read response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponse {
		return nil, fmt.Errorf("response declares size %d (want %d..%d)", size, headerSize, maxResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.conn, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("read response body (%d bytes): %w", size, err)
	}
	return rsp, nil
}

func (s *streamTransport) Close() error { return s.conn.Close() }
