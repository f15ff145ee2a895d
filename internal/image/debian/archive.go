package debian

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxInRelease bounds an InRelease download (bookworm's is ~150 KiB).
const maxInRelease = 4 << 20

// archiveState is the archive as a build sees it: the SHA-256 of each
// suite's InRelease (which lists the digest of every package index, so it
// pins every package version) and the newest of their Date fields.
type archiveState struct {
	Digests map[string]string // "bookworm-security" → hex SHA-256
	Newest  time.Time
}

// releaseURLs maps each suite of the sources to its InRelease URL.
func releaseURLs(o Options) map[string]string {
	out := map[string]string{}
	for _, line := range o.sources() {
		f := strings.Fields(line) // deb URL SUITE main
		out[f[2]] = strings.TrimSuffix(f[1], "/") + "/dists/" + f[2] + "/InRelease"
	}
	return out
}

// fetchArchiveState downloads each suite's InRelease. apt (inside
// mmdebstrap) verifies the signatures; here the bytes only key the cache
// and date the build, so an attacker on the path could at worst make a
// build run again or pick another SOURCE_DATE_EPOCH.
func fetchArchiveState(ctx context.Context, o Options) (*archiveState, error) {
	st := &archiveState{Digests: map[string]string{}}
	client := &http.Client{Timeout: 30 * time.Second}
	for suite, url := range releaseURLs(o) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxInRelease+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("archive: %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("archive: %s: %s", url, resp.Status)
		}
		if len(body) > maxInRelease {
			return nil, fmt.Errorf("archive: %s: larger than %d bytes", url, maxInRelease)
		}
		sum := sha256.Sum256(body)
		st.Digests[suite] = hex.EncodeToString(sum[:])
		d, err := releaseDate(body)
		if err != nil {
			return nil, fmt.Errorf("archive: %s: %w", url, err)
		}
		if d.After(st.Newest) {
			st.Newest = d
		}
	}
	return st, nil
}

// releaseDate returns the Date field of a Release/InRelease file (RFC 2822
// style, always UTC in Debian's archive).
func releaseDate(b []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "Date:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		for _, layout := range []string{time.RFC1123Z, time.RFC1123, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("unparsable Date %q", v)
	}
	return time.Time{}, fmt.Errorf("no Date field")
}
