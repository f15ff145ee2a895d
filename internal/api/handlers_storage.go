package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/storage"
)

// SetStorage connects the storage service (pools and volumes) to the API.
func (s *Server) SetStorage(st *storage.Service) { s.storage = st }

func storageRoot(*http.Request) string { return "/storage" }
func poolObj(r *http.Request) string   { return storage.PoolPath(r.PathValue("pool")) }
func volumeObj(r *http.Request) string {
	return storage.ObjectPath(r.PathValue("pool"), r.PathValue("name"))
}

// needStorage wraps the storage routes: without a storage service they
// answer 503, and storage errors become their HTTP status.
func needStorage(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.storage == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "storage not configured in this daemon"}
		}
		return storageError(h(s, w, r))
	}
}

// storageError maps the storage package's error kinds to HTTP statuses;
// the message (reason, volume, what was refused) is kept as it is.
func storageError(err error) error {
	code := 0
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, storage.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, storage.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, storage.ErrNoSpace):
		code = http.StatusInsufficientStorage
	case errors.Is(err, storage.ErrUnavailable):
		code = http.StatusServiceUnavailable
	default:
		return err
	}
	return &httpError{code: code, msg: err.Error()}
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivDatastoreAudit)
	return writeList(w, filterSlice(s.storage.Pools(), see, func(p storage.PoolInfo) string { return storage.PoolPath(p.Name) }))
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivDatastoreAudit)
	vols := s.storage.Volumes()
	if p := r.URL.Query().Get("pool"); p != "" {
		kept := vols[:0]
		for _, v := range vols {
			if v.Pool == p {
				kept = append(kept, v)
			}
		}
		vols = kept
	}
	return writeList(w, filterSlice(vols, see, storage.Volume.Object))
}

func (s *Server) getVolume(w http.ResponseWriter, r *http.Request) error {
	in, err := s.storage.Inspect(r.Context(), r.PathValue("pool"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, in)
}

// CreateVolumeRequest is the body of createVolume; the pool is in the path.
type CreateVolumeRequest struct {
	Name   string `json:"name"`
	Format string `json:"format,omitempty"` // raw or qcow2 (default)
	Size   int64  `json:"size"`             // bytes
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) error {
	var req CreateVolumeRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	pool := r.PathValue("pool")
	v, err := s.storage.Create(r.Context(), storage.CreateRequest{Pool: pool, Name: req.Name, Format: req.Format, Size: req.Size})
	if err != nil {
		return err
	}
	auditTarget(r, v.Object(), "created volume %s: %s, %d bytes", v.Ref(), v.Format, v.Size)
	return writeJSON(w, http.StatusCreated, v)
}

// ResizeVolumeRequest is the body of resizeVolume.
type ResizeVolumeRequest struct {
	Size int64 `json:"size"` // new virtual size in bytes; never smaller
}

func (s *Server) resizeVolume(w http.ResponseWriter, r *http.Request) error {
	var req ResizeVolumeRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	v, err := s.storage.Resize(r.Context(), r.PathValue("pool"), r.PathValue("name"), req.Size)
	if err != nil {
		return err
	}
	auditTarget(r, v.Object(), "resized volume %s to %d bytes", v.Ref(), v.Size)
	return writeJSON(w, http.StatusOK, v)
}

// CloneVolumeRequest is the body of cloneVolume: the new volume's name,
// in the base's pool.
type CloneVolumeRequest struct {
	Name string `json:"name"`
}

// cloneVolume needs Datastore.Allocate on the base (the route's check: the
// clone exposes its data) and on the pool (a new volume).
func (s *Server) cloneVolume(w http.ResponseWriter, r *http.Request) error {
	var req CloneVolumeRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	pool := r.PathValue("pool")
	if err := s.callerCheck(r, PrivDatastoreAllocate, storage.PoolPath(pool))(); err != nil {
		return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("a clone is a new volume: it needs %s on %s: %v", PrivDatastoreAllocate, storage.PoolPath(pool), err)}
	}
	v, err := s.storage.Clone(r.Context(), pool, r.PathValue("name"), req.Name)
	if err != nil {
		return err
	}
	auditTarget(r, v.Object(), "cloned volume %s/%s as %s (thin qcow2 overlay)", pool, v.Base, v.Ref())
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	pool, name := r.PathValue("pool"), r.PathValue("name")
	if err := s.storage.Delete(r.Context(), pool, name); err != nil {
		return err
	}
	auditTarget(r, storage.ObjectPath(pool, name), "deleted volume %s/%s", pool, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// transferIdle is how long an import or export may go without progress
// before the connection is cut (the server's overall timeouts are too short
// for disk images, so each read or write moves the deadline instead).
const transferIdle = 60 * time.Second

// deadlineReader moves the connection's read deadline on every read.
type deadlineReader struct {
	rc *http.ResponseController
	r  io.Reader
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	_ = d.rc.SetReadDeadline(time.Now().Add(transferIdle))
	return d.r.Read(p)
}

// deadlineWriter moves the connection's write deadline on every write.
type deadlineWriter struct {
	rc *http.ResponseController
	w  io.Writer
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(transferIdle))
	return d.w.Write(p)
}

// importVolume makes a new volume from the request body (the image bytes).
// Query: sha256 (required, 64 hex digits) and format (raw, qcow2, or
// absent to tell by the qcow2 magic).
func (s *Server) importVolume(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := storage.ImportRequest{Pool: r.PathValue("pool"), Name: r.PathValue("name"),
		Format: q.Get("format"), SHA256: q.Get("sha256"), Length: r.ContentLength}
	if req.SHA256 == "" {
		return badRequest("sha256", "sha256 is required: the image's SHA-256 as 64 hex digits (the import is refused if the bytes differ)")
	}
	body := &deadlineReader{rc: http.NewResponseController(w), r: r.Body}
	v, err := s.storage.Import(r.Context(), req, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("volume %s/%s: import refused: larger than %d bytes", req.Pool, req.Name, mbe.Limit-1)}
		}
		return err
	}
	auditTarget(r, v.Object(), "imported volume %s: %s, %d bytes, sha256 %s", v.Ref(), v.Format, v.Size, v.SHA256)
	return writeJSON(w, http.StatusCreated, v)
}

// exportVolume streams a self-contained volume's file.
func (s *Server) exportVolume(w http.ResponseWriter, r *http.Request) error {
	f, v, err := s.storage.Export(r.Context(), r.PathValue("pool"), r.PathValue("name"))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	auditTarget(r, v.Object(), "exported volume %s (%s, %d bytes)", v.Ref(), v.Format, fi.Size())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("X-Bulwark-Volume-Format", v.Format)
	w.WriteHeader(http.StatusOK)
	// Errors after the header cannot change the status; the client sees a
	// short body (Content-Length says how much was due).
	io.Copy(&deadlineWriter{rc: http.NewResponseController(w), w: w}, f)
	return nil
}
