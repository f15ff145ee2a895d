package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/mirrorsvc"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
	"github.com/bulwark-project/bulwark/internal/webui"
)

// MaxBodyBytes bounds a request body; a VM spec is a few hundred bytes.
const MaxBodyBytes = 1 << 20

// Info is static facts about this daemon, reported by /version and /host.
type Info struct {
	Version   string   `json:"version"`
	Commit    string   `json:"commit,omitempty"`
	GoVersion string   `json:"go_version"`
	Backend   string   `json:"backend"`
	Accel     hv.Accel `json:"accel"` // what "auto" resolves to on this host
	Hostname  string   `json:"hostname"`
	StateDir  string   `json:"state_dir"`
}

// Server serves the API.
type Server struct {
	mgr  *manager.Manager
	info Info
	log  *slog.Logger
	reg  *prometheus.Registry
	mux  *http.ServeMux

	audit     *audit.Log      // nil: nothing recorded
	access    *access.Service // nil: only the local root is served
	net       *netsw.Service  // nil until SetNetwork
	fwLogPath string

	console         *console.Broker // nil until SetConsole
	consoleDefaults console.Policy

	vmi    Introspector // nil until SetIntrospection
	events *Events

	imageDirs []string // SetImageDirs: files any VM creator may use

	storage *storage.Service // nil until SetStorage

	attest Attestation // nil until SetAttestation: the routes answer 503
	agent  Agent       // nil until SetAgent: the remote-attestation routes answer 503
	scans  scanState   // latest introspection scan per VM run
	pools  *Pools      // nil until SetPools: the pool routes answer 503
	ips    *IPS        // nil until SetIPS: the IPS routes answer 503
	mirror *mirrorsvc.Service

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New builds the handler tree. reg receives the API's own metrics and is
// what /metrics serves.
func New(mgr *manager.Manager, info Info, reg *prometheus.Registry, log *slog.Logger) *Server {
	s := &Server{mgr: mgr, info: info, log: log, reg: reg, mux: http.NewServeMux()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulwark_api_requests_total", Help: "API requests by operation and status code."},
		[]string{"op", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bulwark_api_request_seconds", Help: "API request latency by operation.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"op"})
	reg.MustRegister(s.requests, s.latency)
	for _, rt := range routes() {
		s.mux.Handle(rt.Method+" "+rt.Path, refuseSlashInNames(rt, s.wrap(rt)))
	}
	// The web console page (static, public: it holds no data; the API
	// calls it makes are authorized like any other).
	s.mux.Handle(webui.Prefix, webui.Handler())
	s.mux.HandleFunc("/", noRoute)
	return s
}

// Routes exposes the route table (for tests and the access-control layer).
func Routes() []Route { return routes() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// NewHTTPServer returns an http.Server with timeouts that keep slow or
// malicious clients from holding resources.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      10 * time.Minute, // a stop may wait for a guest
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       ConnContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController and the WebSocket upgrade reach the
// underlying connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "op", rt.OpID, "panic", fmt.Sprint(p))
				if sw.code == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error", "")
				}
			}
			code := strconv.Itoa(sw.code)
			s.requests.WithLabelValues(rt.OpID, code).Inc()
			s.latency.WithLabelValues(rt.OpID).Observe(time.Since(start).Seconds())
			s.log.Debug("api", "op", rt.OpID, "path", r.URL.Path, "code", sw.code, "dur", time.Since(start))
		}()
		r.Body = http.MaxBytesReader(sw, r.Body, rt.bodyLimit())
		r = withAuditNote(withServer(r, s))
		errMsg := ""
		var err error
		if !rt.Public {
			r, err = s.authorize(r, rt)
		}
		if err == nil && changes(r, rt) {
			// Fail closed: no record of the intent, no change.
			if err = s.recordIntent(r, rt); err != nil {
				s.writeErr(sw, rt, err)
				return
			}
		}
		if err == nil {
			err = rt.Handler(s, sw, r)
		}
		if err != nil {
			errMsg = err.Error()
			s.writeErr(sw, rt, err)
		}
		s.record(r, rt, sw.code, errMsg)
	})
}

// APIError is the JSON body of every error response.
type APIError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

type httpError struct {
	code  int
	msg   string
	field string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(field, format string, a ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, a...), field: field}
}

func (s *Server) writeErr(w http.ResponseWriter, rt Route, err error) {
	var (
		he  *httpError
		fe  *vm.FieldError
		nfe *netsw.FieldError
		ce  *vm.ConflictError
		mbe *http.MaxBytesError
	)
	if ae, ok := accessError(err); ok {
		he = ae
	}
	// Storage refusals reach VM routes too (a VM with snapshots cannot be
	// deleted, a root volume cannot be made): keep their status.
	if se, ok := storageError(err).(*httpError); ok && he == nil {
		he = se
	}
	switch {
	case he != nil || errors.As(err, &he):
		writeError(w, he.code, he.msg, he.field)
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, fe.Error(), fe.Field)
	case errors.As(err, &nfe):
		writeError(w, http.StatusBadRequest, nfe.Error(), nfe.Field)
	case errors.Is(err, netsw.ErrInUse), errors.Is(err, attest.ErrHostUntrusted):
		writeError(w, http.StatusConflict, err.Error(), "")
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), "")
	case errors.As(err, &ce), errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, err.Error(), "")
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err.Error(), "")
	default:
		s.log.Error("api error", "op", rt.OpID, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error(), "")
	}
}

func writeError(w http.ResponseWriter, code int, msg, field string) {
	writeJSON(w, code, APIError{Error: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// DecodeSpec reads exactly one JSON VM spec, refusing unknown fields,
// duplicate keys (jsondup.go) and trailing data, with errors that name the
// offending field. At most MaxBodyBytes are read.
func DecodeSpec(r io.Reader) (vm.Spec, error) {
	var spec vm.Spec
	data, err := readBody(r)
	if err != nil {
		return spec, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return spec, badRequest("", "request body must hold exactly one JSON object")
	}
	if err := checkDuplicateKeys(data); err != nil {
		return vm.Spec{}, err
	}
	return spec, nil
}

func decodeError(err error) error {
	var (
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &ute):
		return badRequest(ute.Field, "field %q: expected %s, got JSON %s", ute.Field, ute.Type, ute.Value)
	case errors.Is(err, io.EOF):
		return badRequest("", "empty request body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "truncated JSON")
	}
	msg := err.Error()
	const unk = "json: unknown field "
	if len(msg) > len(unk) && msg[:len(unk)] == unk {
		f, _ := strconv.Unquote(msg[len(unk):])
		return badRequest(f, "unknown field %s", msg[len(unk):])
	}
	return badRequest("", "invalid JSON: %v", err)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
