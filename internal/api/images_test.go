package api

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/imagestore"
)

// The image routes read the registry under STATE/images: the list carries
// manifests (and a broken one with its error), get returns one, unknown or
// invalid names are 404 and 400.
func TestImageRoutes(t *testing.T) {
	ts := newTestServer(t)
	store := imagestore.Store{Dir: filepath.Join(ts.dir, "images")}
	st, err := store.Begin("debian-12")
	if err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(st.Dir, "vmlinuz")
	os.WriteFile(k, []byte("kernel"), 0o644)
	sum, n, _ := imagestore.HashFile(k)
	if err := st.Install(&imagestore.Manifest{Version: "12", Kind: "disk",
		Files: []imagestore.File{{Role: imagestore.RoleKernel, Name: "vmlinuz", SHA256: sum, Size: n}}}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(store.Dir, "broken"), 0o700)
	os.WriteFile(filepath.Join(store.Dir, "broken", imagestore.ManifestName), []byte("{"), 0o644)

	rec := ts.do("GET", "/api/v1/images", nil)
	var ents []imagestore.Entry
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &ents) != nil || len(ents) != 2 {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if ents[0].Name != "broken" || ents[0].Err == "" || ents[1].Manifest == nil || ents[1].Manifest.Files[0].SHA256 != sum {
		t.Fatalf("list entries: %+v", ents)
	}
	rec = ts.do("GET", "/api/v1/images/debian-12", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), sum) {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("GET", "/api/v1/images/nosuch", nil), http.StatusNotFound, "")
	expectError(t, ts.do("GET", "/api/v1/images/No_Such", nil), http.StatusBadRequest, "name")
}
