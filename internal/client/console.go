package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
)

// ConsoleOptions are the console connection's query parameters.
type ConsoleOptions struct {
	Force bool // take the console over (VM.Console.Takeover)
	Wait  bool // wait in line if it is held
}

// ConsoleControl is a control message from the console broker.
type ConsoleControl struct {
	Type    string `json:"type"` // status, notice, closed
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Code    int    `json:"code,omitempty"`
	Session string `json:"session,omitempty"`
	State   string `json:"state,omitempty"`
	Holders []struct {
		User   string `json:"user"`
		Client string `json:"client"`
		Since  string `json:"since"`
	} `json:"holders,omitempty"`
	Waiting []struct {
		User  string `json:"user"`
		Since string `json:"since"`
	} `json:"waiting,omitempty"`
	Policy map[string]any `json:"policy,omitempty"`
}

// Console is an open console WebSocket.
type Console struct {
	c *websocket.Conn
}

// DialConsole opens a VM's console. An HTTP-level refusal (401, 403, 404,
// 409) is returned as *Error.
func (c *Client) DialConsole(ctx context.Context, name string, o ConsoleOptions) (*Console, error) {
	q := url.Values{}
	if o.Force {
		q.Set("force", "1")
	}
	if o.Wait {
		q.Set("wait", "1")
	}
	u := c.base + "/api/v1/vms/" + url.PathEscape(name) + "/console"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			e := &Error{Status: resp.StatusCode}
			if resp.Body != nil {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				json.Unmarshal(body, e)
			}
			if e.Message == "" {
				e.Message = resp.Status
			}
			return nil, e
		}
		return nil, fmt.Errorf("console: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	return &Console{c: ws}, nil
}

// Read returns the next message: output bytes, or a control message.
func (k *Console) Read(ctx context.Context) (out []byte, ctl *ConsoleControl, err error) {
	typ, data, err := k.c.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	if typ == websocket.MessageText {
		var m ConsoleControl
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, nil, fmt.Errorf("console: bad control message: %w", err)
		}
		return nil, &m, nil
	}
	return data, nil, nil
}

// Send sends keystrokes.
func (k *Console) Send(ctx context.Context, p []byte) error {
	return k.c.Write(ctx, websocket.MessageBinary, p)
}

// Resize tells the broker the terminal size (recorded with the session).
func (k *Console) Resize(ctx context.Context, cols, rows int) error {
	b, _ := json.Marshal(map[string]any{"type": "resize", "cols": cols, "rows": rows})
	return k.c.Write(ctx, websocket.MessageText, b)
}

// Close ends the session normally.
func (k *Console) Close() error { return k.c.Close(websocket.StatusNormalClosure, "detached") }

// CloseStatus is the close code of err from Read (-1 if none).
func CloseStatus(err error) int {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return -1
}
