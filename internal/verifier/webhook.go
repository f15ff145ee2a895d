package verifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// Webhook is an HTTP(S) endpoint told about verdict changes. The body is
// JSON (hookEvent); with a Secret, the header X-Bulwark-Signature carries
// "sha256=" and the hex HMAC-SHA256 of the body under it.
type Webhook struct {
	URL    string
	Secret []byte
}

// hookEvent is a webhook's JSON body.
type hookEvent struct {
	Event    string         `json:"event"`
	Host     string         `json:"host"`
	Previous attest.Status  `json:"previous,omitempty"`
	Status   attest.Status  `json:"status"`
	Verdict  attest.Verdict `json:"verdict"`
}

// Webhook delivery limits: a slow or dead endpoint must not hold up
// verification.
const (
	hookQueue    = 1024
	hookAttempts = 3
	hookTimeout  = 5 * time.Second
)

type webhooks struct {
	hooks []Webhook
	log   *slog.Logger
	q     chan hookEvent
	wg    sync.WaitGroup
	hc    *http.Client
}

func newWebhooks(hooks []Webhook, log *slog.Logger) *webhooks {
	w := &webhooks{hooks: hooks, log: log, q: make(chan hookEvent, hookQueue), hc: &http.Client{Timeout: hookTimeout}}
	if len(hooks) > 0 {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

func (w *webhooks) send(ev hookEvent) {
	if len(w.hooks) == 0 {
		return
	}
	select {
	case w.q <- ev:
	default:
		w.log.Error("verifier: webhook queue full: event dropped", "host", ev.Host, "status", ev.Status)
	}
}

func (w *webhooks) close() {
	close(w.q)
	w.wg.Wait()
}

func (w *webhooks) run() {
	defer w.wg.Done()
	for ev := range w.q {
		body, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		for _, h := range w.hooks {
			w.deliver(h, ev, body)
		}
	}
}

func (w *webhooks) deliver(h Webhook, ev hookEvent, body []byte) {
	var err error
	for attempt := 1; attempt <= hookAttempts; attempt++ {
		if err = w.post(h, body); err == nil {
			w.log.Info("verifier: webhook delivered", "url", h.URL, "host", ev.Host, "status", ev.Status)
			return
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	w.log.Error("verifier: webhook failed", "url", h.URL, "host", ev.Host, "status", ev.Status, "attempts", hookAttempts, "err", err)
}

func (w *webhooks) post(h Webhook, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", h.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(h.Secret) > 0 {
		req.Header.Set("X-Bulwark-Signature", Sign(h.Secret, body))
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// Sign is the X-Bulwark-Signature value of a webhook body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
