package verifier

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/client"
)

// HostClient is how the verifier talks to a host's attestation agent.
type HostClient interface {
	Keys(ctx context.Context) (attest.Keys, error)
	Activate(ctx context.Context, ch attest.Challenge) ([]byte, error)
	Quote(ctx context.Context, nonce []byte) (attest.Evidence, error)
	PushVerdict(ctx context.Context, v attest.Verdict) error
}

// Dialer makes a HostClient for a registered host.
type Dialer func(h Host) (HostClient, error)

// DialAPI reaches a host's daemon through its REST API: "unix:PATH" for
// the local socket (tests, a verifier on the same machine), "https://..."
// otherwise, with the host's CA certificate.
func DialAPI(h Host) (HostClient, error) {
	var c *client.Client
	switch {
	case strings.HasPrefix(h.URL, "unix:"):
		c = client.New(strings.TrimPrefix(h.URL, "unix:"))
	case strings.HasPrefix(h.URL, "https://"):
		var err error
		if c, err = client.NewHTTPSPEM(h.URL, []byte(h.CA)); err != nil {
			return nil, fmt.Errorf("host %s: CA certificate: %w", h.Name, err)
		}
	default:
		return nil, fmt.Errorf("host %s: URL %q: want unix:PATH or https://HOST:PORT", h.Name, h.URL)
	}
	if h.Token != "" {
		c = c.WithToken(h.Token)
	}
	return apiClient{c}, nil
}

type apiClient struct{ c *client.Client }

func (a apiClient) Keys(ctx context.Context) (attest.Keys, error) {
	var k attest.Keys
	return k, a.c.Do(ctx, "GET", "/api/v1/attestation/keys", nil, &k)
}

func (a apiClient) Activate(ctx context.Context, ch attest.Challenge) ([]byte, error) {
	var r attest.ChallengeResponse
	return r.Secret, a.c.Do(ctx, "POST", "/api/v1/attestation/activate", ch, &r)
}

func (a apiClient) Quote(ctx context.Context, nonce []byte) (attest.Evidence, error) {
	var ev attest.Evidence
	return ev, a.c.Do(ctx, "GET", "/api/v1/attestation/quote?nonce="+hex.EncodeToString(nonce), nil, &ev)
}

func (a apiClient) PushVerdict(ctx context.Context, v attest.Verdict) error {
	return a.c.Do(ctx, "PUT", "/api/v1/attestation/verdict", v, nil)
}
