package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// maxRequest bounds a request body (a policy document is at most 1 MiB).
const maxRequest = 2 << 20

// Serve answers the verifier's API on a unix socket at path, reachable by
// root only (the directory is made 0700, the socket 0600, and each peer's
// uid is checked). It returns when ctx is cancelled.
func (s *Service) Serve(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerUID(c))
		}}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type peerKey struct{}

// peerUID is the unix peer's uid, or -1.
func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

// Handler is the verifier's API:
//
//	GET    /v1/hosts                  every host with its latest verdict
//	POST   /v1/hosts                  register a host (Registration)
//	GET    /v1/hosts/{name}           one host
//	DELETE /v1/hosts/{name}           forget a host
//	POST   /v1/hosts/{name}/poll      poll now; the verdict
//	GET    /v1/hosts/{name}/history   stored verdict changes (?n=)
//	GET    /v1/policy                 the current policy document
//	PUT    /v1/policy                 set a new policy version
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if uid, ok := r.Context().Value(peerKey{}).(int); ok && uid != 0 {
				s.cfg.Log.Warn("verifier: API request refused", "reason", "peer is not root", "uid", uid, "path", r.URL.Path)
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "the verifier's API is for root only"})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxRequest)
			if err := fn(w, r); err != nil {
				code := http.StatusInternalServerError
				switch {
				case errors.Is(err, ErrNotFound):
					code = http.StatusNotFound
				case errors.Is(err, ErrInvalid):
					code = http.StatusBadRequest
				case errors.Is(err, ErrStaleVersion):
					code = http.StatusConflict
				}
				writeJSON(w, code, map[string]string{"error": err.Error()})
			}
		})
	}
	h("GET /v1/hosts", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, s.Status())
	})
	h("POST /v1/hosts", func(w http.ResponseWriter, r *http.Request) error {
		var reg Registration
		if err := decode(r.Body, &reg); err != nil {
			return err
		}
		st, err := s.AddHost(r.Context(), reg, actorOf(r))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, st)
	})
	h("GET /v1/hosts/{name}", func(w http.ResponseWriter, r *http.Request) error {
		st, err := s.hostStatus(r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st)
	})
	h("DELETE /v1/hosts/{name}", func(w http.ResponseWriter, r *http.Request) error {
		if err := s.RemoveHost(r.Context(), r.PathValue("name"), actorOf(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("POST /v1/hosts/{name}/poll", func(w http.ResponseWriter, r *http.Request) error {
		v, err := s.PollNow(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	})
	h("GET /v1/hosts/{name}/history", func(w http.ResponseWriter, r *http.Request) error {
		n := 20
		if q := r.URL.Query().Get("n"); q != "" {
			v, err := strconv.Atoi(q)
			if err != nil || v < 1 || v > keepVerdicts {
				return fmt.Errorf("%w: n must be 1..%d", ErrInvalid, keepVerdicts)
			}
			n = v
		}
		vs, err := s.History(r.Context(), r.PathValue("name"), n)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, vs)
	})
	h("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) error {
		_, doc, err := s.Policy()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		_, err = w.Write(doc)
		return err
	})
	h("PUT /v1/policy", func(w http.ResponseWriter, r *http.Request) error {
		doc, err := io.ReadAll(r.Body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		v, err := s.SetPolicy(r.Context(), doc, actorOf(r))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]int{"version": v})
	})
	return mux
}

func actorOf(r *http.Request) string {
	if uid, ok := r.Context().Value(peerKey{}).(int); ok && uid >= 0 {
		return "uid:" + strconv.Itoa(uid)
	}
	return "local"
}

func decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: request body must hold exactly one JSON object", ErrInvalid)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
