package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServerConfigIssuesVerifiableCert(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ServerConfig(dir, []string{"127.0.0.1", "localhost"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{caKey, serverKey} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", n, err, fi.Mode())
		}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, CACert))
	pool.AppendCertsFromPEM(ca)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("client with the CA: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" {
		t.Fatalf("read %q", b)
	}
	// Without the CA the certificate is not trusted.
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Fatal("certificate trusted without the CA")
	}
}

func TestReuseAndRenew(t *testing.T) {
	dir := t.TempDir()
	if _, err := ServerConfig(dir, []string{"127.0.0.1"}, "", ""); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, CACert))
	srv1, _ := os.ReadFile(filepath.Join(dir, serverCert))
	if _, err := ServerConfig(dir, []string{"127.0.0.1"}, "", ""); err != nil {
		t.Fatal(err)
	}
	srv2, _ := os.ReadFile(filepath.Join(dir, serverCert))
	if string(srv1) != string(srv2) {
		t.Fatal("server certificate reissued without reason")
	}
	// A new host name reissues the server certificate, keeping the CA.
	if _, err := ServerConfig(dir, []string{"127.0.0.1", "bulwark.example"}, "", ""); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, CACert))
	srv3, _ := os.ReadFile(filepath.Join(dir, serverCert))
	if string(ca1) != string(ca2) || string(srv3) == string(srv2) {
		t.Fatal("CA changed or server certificate not reissued for a new host")
	}
	// Close to expiry: reissued.
	ca, key, err := loadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrIssue(dir, ca, key, []string{"127.0.0.1"}, time.Now().AddDate(1, 0, -10)); err != nil {
		t.Fatal(err)
	}
	srv4, _ := os.ReadFile(filepath.Join(dir, serverCert))
	if string(srv4) == string(srv3) {
		t.Fatal("certificate near expiry not renewed")
	}
	_ = net.IPv4len
}

func TestOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	if _, err := ServerConfig(dir, nil, filepath.Join(dir, "nope.crt"), filepath.Join(dir, "nope.key")); err == nil {
		t.Fatal("missing operator certificate accepted")
	}
}
