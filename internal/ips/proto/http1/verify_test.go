package http1

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/proto/internal/pcaptest"
)

// TestSuricataVerify runs the HTTP captures of the suricata-verify sample
// through the parser and checks that the buffer each test's rule inspects
// holds the content that made Suricata alert (or not).
func TestSuricataVerify(t *testing.T) {
	dir := pcaptest.DataDir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("suricata-verify data not present: %v", err)
	}
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, txs []*Tx)
	}{
		{"http-uri-spaces", func(t *testing.T, txs []*Tx) {
			if !anyTx(txs, func(tx *Tx) bool { return bytes.Contains(tx.URI, []byte(" afterspace")) }) {
				t.Error("http.uri lacks \" afterspace\"")
			}
		}},
		{"http-close-headers", func(t *testing.T, txs []*Tx) {
			if !anyTx(txs, func(tx *Tx) bool {
				return bytes.Contains(bytes.ToLower(tx.ResponseHeaderBuf), []byte("ng1nx"))
			}) {
				t.Error("response http.header lacks ng1nx")
			}
		}},
		{"http-evader-266", func(t *testing.T, txs []*Tx) {
			if !anyTx(txs, func(tx *Tx) bool {
				return bytes.Contains(tx.ResponseBody.Data, []byte("EICAR-STANDARD-ANTIVIRUS-TEST-FILE")) &&
					bytes.Contains(tx.ResponseBody.Data, []byte("X5O!P%@AP[4"))
			}) {
				t.Error("file.data lacks the EICAR string")
			}
		}},
		{"http-post-data-decompression", func(t *testing.T, txs []*Tx) {
			if !anyTx(txs, func(tx *Tx) bool { return bytes.Contains(bytes.ToLower(tx.RequestBody.Data), []byte("name")) }) {
				t.Error("decompressed http.request_body lacks \"name\"")
			}
			if anyTx(txs, func(tx *Tx) bool { return bytes.Contains(bytes.ToLower(tx.ResponseBody.Data), []byte("name")) }) {
				t.Error("http.response_body has \"name\" (Suricata: no alert)")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcaps, _ := filepath.Glob(filepath.Join(dir, tc.name, "*.pcap"))
			if len(pcaps) != 1 {
				t.Skip("no pcap")
			}
			pkts, err := pcaptest.Read(pcaps[0])
			if err != nil {
				t.Fatal(err)
			}
			cli, srv := pcaptest.Streams(pkts)
			c := NewConn(DefaultConfig())
			c.Feed(ToServer, cli)
			c.Feed(ToClient, srv)
			c.Close(ToServer)
			c.Close(ToClient)
			tc.check(t, c.Txs())
			if t.Failed() {
				for _, tx := range c.Txs() {
					t.Logf("tx %d: %q uri %q req body %q resp hdr %q resp body %q", tx.ID, tx.RequestLine, tx.URI,
						tx.RequestBody.Data, tx.ResponseHeaderBuf, tx.ResponseBody.Data)
				}
				t.Logf("events %v", c.TakeEvents())
			}
		})
	}
}

func anyTx(txs []*Tx, f func(*Tx) bool) bool {
	for _, tx := range txs {
		if f(tx) {
			return true
		}
	}
	return false
}
