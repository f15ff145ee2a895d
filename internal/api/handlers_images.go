package api

import (
	"errors"
	"net/http"
	"path/filepath"

	"github.com/bulwark-project/bulwark/internal/imagestore"
)

func imagesRoot(*http.Request) string { return "/images" }
func imageObj(r *http.Request) string { return "/images/" + r.PathValue("name") }

// imageStore is the daemon's image registry, STATE/images. Manifests are
// read on each request (they are small); file digests are not checked
// here, only where files are used (imagestore.Store.Open, image verify).
func (s *Server) imageStore() (imagestore.Store, bool) {
	if s.info.StateDir == "" {
		return imagestore.Store{}, false
	}
	return imagestore.Store{Dir: filepath.Join(s.info.StateDir, "images")}, true
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	store, ok := s.imageStore()
	if !ok {
		return writeList(w, []imagestore.Entry{})
	}
	ents, err := store.List()
	if err != nil {
		return err
	}
	see := s.visible(r, PrivDatastoreAudit)
	return writeList(w, filterSlice(ents, see, func(e imagestore.Entry) string { return "/images/" + e.Name }))
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) error {
	store, ok := s.imageStore()
	if !ok {
		return &httpError{code: http.StatusNotFound, msg: "no image store"}
	}
	m, err := store.Load(r.PathValue("name"))
	switch {
	case errors.Is(err, imagestore.ErrNotFound):
		return &httpError{code: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, imagestore.ErrInvalidName):
		return badRequest("name", "%s", err.Error())
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}
