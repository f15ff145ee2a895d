package webui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// Every answer, errors included, carries the security headers.
func checkSecurityHeaders(t *testing.T, target string, rec *httptest.ResponseRecorder) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", target, k, got, v)
		}
	}
}

func TestServesAssets(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `id="terminal"`},
		{"/ui/index.html", "text/html; charset=utf-8", `id="terminal"`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "new WebSocket("},
		{"/ui/app.css", "text/css; charset=utf-8", "#terminal"},
		{"/ui/xterm.js", "text/javascript; charset=utf-8", "Terminal"},
		{"/ui/xterm.css", "text/css; charset=utf-8", ".xterm"},
		{"/ui/xterm-LICENSE.txt", "text/plain; charset=utf-8", "MIT"},
	} {
		rec := get(t, h, "GET", tc.target)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", tc.target, rec.Code)
			continue
		}
		checkSecurityHeaders(t, tc.target, rec)
		if ct := rec.Header().Get("Content-Type"); ct != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.target, ct, tc.contentType)
		}
		if !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.target, tc.contains)
		}
	}
}

func TestHead(t *testing.T) {
	rec := get(t, Handler(), "HEAD", "/ui/xterm.js")
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d with %d body bytes", rec.Code, rec.Body.Len())
	}
	if rec.Header().Get("Content-Length") == "" || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD headers %v", rec.Header())
	}
}

func TestNotFound(t *testing.T) {
	h := Handler()
	for _, target := range []string{
		"/ui/nope.js",
		"/ui/assets/",           // the embed folder is not a path
		"/ui/assets/index.html", // nor are its files under it
		"/ui/src/app.js",
		"/ui/xterm.js.map", // not shipped: devtools may ask for it
		"/ui/index.html/",
		"/ui//index.html",
		"/ui/..%2fwebui.go",
		"/ui/%2e%2e/webui.go",
		"/index.html", // outside the prefix
	} {
		rec := get(t, h, "GET", target)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
		checkSecurityHeaders(t, target, rec)
		if strings.Contains(rec.Body.String(), "<a href") {
			t.Errorf("GET %s: looks like a listing: %s", target, rec.Body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := Handler()
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		rec := get(t, h, method, "/ui/")
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /ui/: %d, want 405", method, rec.Code)
		}
		if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
			t.Errorf("%s /ui/: Allow %q", method, allow)
		}
		checkSecurityHeaders(t, method+" /ui/", rec)
	}
}

// The embedded assets are exactly what build.sh makes; a missing one means
// the build was not run (or not committed).
func TestAssetSet(t *testing.T) {
	got := loadAssets()
	want := []string{"index.html", "app.js", "app.css", "xterm.js", "xterm.css", "xterm-LICENSE.txt"}
	for _, name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("asset %s missing: run web/console/build.sh", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("assets %d, want %d", len(got), len(want))
	}
}

// The CSP allows no inline script or style, so the page must have none,
// and every file it loads must be one the handler serves.
func TestIndexFitsCSP(t *testing.T) {
	h := Handler()
	page := get(t, h, "GET", "/ui/").Body.String()

	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`), // onclick= and friends
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html has inline code the CSP blocks: %q", m)
		}
	}

	refs := regexp.MustCompile(`\s(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) == 0 {
		t.Fatal("index.html loads nothing")
	}
	for _, ref := range refs {
		if strings.Contains(ref[1], ":") || strings.HasPrefix(ref[1], "/") {
			t.Errorf("index.html loads %q: want a name relative to /ui/", ref[1])
			continue
		}
		if rec := get(t, h, "GET", Prefix+ref[1]); rec.Code != http.StatusOK {
			t.Errorf("index.html loads %q: %d", ref[1], rec.Code)
		}
	}
}
