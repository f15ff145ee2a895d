package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"
)

// HTTPSConfig configures an HTTPS anchor sink.
type HTTPSConfig struct {
	URL string // https only
	// CAFile is a PEM file of the CAs that may sign the receiver's
	// certificate; the system roots when empty.
	CAFile    string
	PublicKey ed25519.PublicKey // the log's, sent with each checkpoint
	Hostname  string            // sent as "host"; os.Hostname when empty
	Queue     int               // DefaultRemoteQueue when zero
	// Attempts is how many times a checkpoint is POSTed before it is
	// dropped (default 5); Backoff is the first wait between attempts
	// (default 500ms), doubled after each.
	Attempts int
	Backoff  time.Duration
	Log      *slog.Logger // drops are logged here; slog.Default when nil
}

// httpsTimeout bounds one POST.
const httpsTimeout = 10 * time.Second

// NewHTTPSSink returns a sink that POSTs each checkpoint to cfg.URL as a
// JSON object: the anchor's fields plus "key" (the log's public key, hex)
// and "host". A 2xx answer is success; a network error, 408, 429 or 5xx is
// retried with backoff; anything else, or running out of attempts, drops
// the checkpoint and logs why. A receiver that appends each body as a line
// builds a file `bulwark audit verify --anchors` reads.
func NewHTTPSSink(cfg HTTPSConfig) (*RemoteSink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("audit: anchor URL %q: want https://HOST/PATH", cfg.URL)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("audit: anchor CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("audit: anchor CA %s: no PEM certificates", cfg.CAFile)
		}
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	hc := &http.Client{Timeout: httpsTimeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	deliver := func(ctx context.Context, a Anchor) error {
		body := remoteJSON(a, cfg.PublicKey, cfg.Hostname)
		wait := cfg.Backoff
		var err error
		for try := 1; ; try++ {
			var retry bool
			if retry, err = postAnchor(ctx, hc, cfg.URL, body); err == nil {
				return nil
			}
			if !retry || try >= cfg.Attempts {
				return fmt.Errorf("after %d attempt(s): %w", try, err)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return fmt.Errorf("after %d attempt(s), closing: %w", try, err)
			}
			wait *= 2
		}
	}
	return newRemoteSink("https "+u.Redacted(), cfg.Queue, cfg.Log, deliver), nil
}

// postAnchor sends one checkpoint; retry says whether a failure may pass.
func postAnchor(ctx context.Context, hc *http.Client, url string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, fmt.Errorf("HTTP %s", resp.Status)
	default:
		return false, fmt.Errorf("HTTP %s", resp.Status)
	}
}
