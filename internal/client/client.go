// Package client is the Go client of Bulwark's REST API, used by the CLI and
// by tests. It speaks HTTP over the daemon's Unix socket.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/bulwark/bulwark.sock"

// SocketFromEnv returns flag if set, else $BULWARK_SOCKET, else DefaultSocket.
func SocketFromEnv(flag string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv("BULWARK_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client talks to one daemon.
type Client struct {
	hc    *http.Client
	base  string
	token string // API token; empty: the socket peer's identity (root)
}

// WithToken returns a copy of the client that authenticates with an API
// token.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// New returns a client for the daemon's Unix socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://bulwark"}
}

// NewHTTPS returns a client for the daemon's HTTPS listener (base such as
// https://127.0.0.1:8443), trusting the CA certificate in caFile (empty:
// the system roots).
func NewHTTPS(base, caFile string) (*Client, error) {
	var pem []byte
	if caFile != "" {
		var err error
		if pem, err = os.ReadFile(caFile); err != nil {
			return nil, err
		}
	}
	c, err := NewHTTPSPEM(base, pem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caFile, err)
	}
	return c, nil
}

// NewHTTPSPEM is NewHTTPS with the CA certificate given as PEM (empty: the
// system roots).
func NewHTTPSPEM(base string, caPEM []byte) (*Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("no PEM certificate")
		}
		tc.RootCAs = pool
	}
	return &Client{hc: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, base: strings.TrimSuffix(base, "/")}, nil
}

// Error is an error response from the daemon.
type Error struct {
	Status  int
	Message string `json:"error"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" && !bytes.Contains([]byte(e.Message), []byte(e.Field)) {
		return fmt.Sprintf("%s (field %s)", e.Message, e.Field)
	}
	return e.Message
}

// Do sends a request and decodes a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	body, err := c.raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) raw(ctx context.Context, method, path string, in any) ([]byte, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil, e
	}
	return body, nil
}

// Raw sends a request and returns the raw body of a successful answer.
func (c *Client) Raw(ctx context.Context, method, path string) ([]byte, error) {
	return c.raw(ctx, method, path, nil)
}

// ListVMs returns every VM.
func (c *Client) ListVMs(ctx context.Context) ([]*vm.VM, error) {
	var out []*vm.VM
	return out, c.Do(ctx, "GET", "/api/v1/vms", nil, &out)
}

// CreateVM defines a VM.
func (c *Client) CreateVM(ctx context.Context, spec vm.Spec) (*vm.VM, error) {
	return c.CreateVMWithRoot(ctx, spec, "")
}

// CreateVMWithRoot defines a VM from an image whose root disk (a thin
// overlay on the image's disk) is grown to rootSize ("8G"; "" keeps the
// image's size).
func (c *Client) CreateVMWithRoot(ctx context.Context, spec vm.Spec, rootSize string) (*vm.VM, error) {
	var out vm.VM
	path := "/api/v1/vms"
	if rootSize != "" {
		path += "?root_size=" + url.QueryEscape(rootSize)
	}
	return &out, c.Do(ctx, "POST", path, spec, &out)
}

// GetVM returns one VM.
func (c *Client) GetVM(ctx context.Context, name string) (*vm.VM, error) {
	var out vm.VM
	return &out, c.Do(ctx, "GET", "/api/v1/vms/"+url.PathEscape(name), nil, &out)
}

// DeleteVM deletes a VM that is not running.
func (c *Client) DeleteVM(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/api/v1/vms/"+url.PathEscape(name), nil, nil)
}

// Action runs start, pause or resume.
func (c *Client) Action(ctx context.Context, name, action string) (*vm.VM, error) {
	var out vm.VM
	return &out, c.Do(ctx, "POST", "/api/v1/vms/"+url.PathEscape(name)+"/"+action, nil, &out)
}

// StopVM powers a VM off; timeoutSec 0 uses the daemon's default.
func (c *Client) StopVM(ctx context.Context, name string, force bool, timeoutSec int) (*vm.VM, error) {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	if timeoutSec > 0 {
		q.Set("timeout", strconv.Itoa(timeoutSec))
	}
	var out vm.VM
	p := "/api/v1/vms/" + url.PathEscape(name) + "/stop"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return &out, c.Do(ctx, "POST", p, nil, &out)
}

// ConsoleLog returns the last n bytes of a VM's serial console (0 = default).
func (c *Client) ConsoleLog(ctx context.Context, name string, n int) ([]byte, error) {
	p := "/api/v1/vms/" + url.PathEscape(name) + "/console/log"
	if n > 0 {
		p += "?bytes=" + strconv.Itoa(n)
	}
	return c.raw(ctx, "GET", p, nil)
}

// Host returns the daemon's host facts.
func (c *Client) Host(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	return out, c.Do(ctx, "GET", "/api/v1/host", nil, &out)
}

// Download streams a successful GET answer into w (no size limit: memory
// dumps are as large as the guest's RAM).
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("daemon unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return 0, e
	}
	return io.Copy(w, resp.Body)
}
