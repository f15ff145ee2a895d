// Package webui serves the web console page (web/console, built into
// assets/ by web/console/build.sh) under /ui/.
//
// The page is static and same-origin with the API: it logs in with
// POST /api/v1/login and talks to the console over the WebSocket of
// docs/console.md. Every response carries a strict Content-Security-Policy
// and is never cached, so an injected script has nowhere to come from and
// a stale page never outlives a deploy.
package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// Prefix is the URL path the page is served under.
const Prefix = "/ui/"

// CSP is the page's Content-Security-Policy: scripts, styles and
// connections only from this origin (no inline code: the page has none),
// never framed (no clickjacking of the console), no <base> rewriting and
// forms posting only back here.
const CSP = "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

//go:embed assets
var assetFS embed.FS

// contentTypes names the types the page is made of. Serving a type from
// this table, never sniffed or guessed from the system's MIME database,
// keeps what the browser runs independent of the host.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
}

type asset struct {
	body        []byte
	contentType string
}

// Handler serves the page under Prefix: Prefix itself is index.html, and
// Prefix+NAME is the asset NAME. Assets form one flat folder, so a path
// with a further slash (or anything else not built) is 404: there are no
// directory listings. Only GET and HEAD are allowed.
func Handler() http.Handler {
	assets := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// On every answer, errors included: a 404 page is a page too.
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")

		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(a.body)
	})
}

// loadAssets reads the embedded files into memory once: they are small,
// and a lookup in a fixed map cannot be walked out of with "..".
func loadAssets() map[string]asset {
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic("webui: embedded assets: " + err.Error()) // cannot happen: go:embed checked it
	}
	assets := make(map[string]asset, len(entries))
	for _, e := range entries {
		ct, known := contentTypes[path.Ext(e.Name())]
		if e.IsDir() || !known {
			continue // build.sh makes neither; serve nothing we cannot type
		}
		body, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic("webui: embedded asset " + e.Name() + ": " + err.Error())
		}
		assets[e.Name()] = asset{body: body, contentType: ct}
	}
	return assets
}
