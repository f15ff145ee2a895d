package monitor

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
)

// Handler answers one request; files are the descriptors sent with it
// (RAM file, kernel image), which it owns.
type Handler func(req Request, files []*os.File) (any, error)

// Serve answers requests on c, one at a time, until the peer closes it.
func Serve(c *net.UnixConn, h Handler) error {
	for {
		body, files, err := readFrame(c, MaxRequest)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var resp Response
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			for _, f := range files {
				f.Close()
			}
			resp.Error = "bad request: " + err.Error()
		} else {
			res, err := safeCall(h, req, files)
			if err != nil {
				resp.Error = err.Error()
			} else if resp.Result, err = json.Marshal(res); err != nil {
				resp.Error = err.Error()
			}
		}
		out, _ := json.Marshal(resp)
		if len(out) > MaxResponse {
			out, _ = json.Marshal(Response{Error: "result too large"})
		}
		if err := writeFrame(c, out, nil); err != nil {
			return err
		}
	}
}

// safeCall turns a panic in a handler (guest memory is hostile; a bug must
// not take the monitor down) into an error.
func safeCall(h Handler, req Request, files []*os.File) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("monitor: internal error while reading guest memory")
			res = nil
		}
	}()
	return h(req, files)
}
