package main

import (
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTLSFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // error substring; "" = valid
	}{
		{[]string{"--tls-self-signed"}, ""},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, ""},
		{[]string{"--tls-cert", "c.pem"}, "together"},
		{[]string{"--tls-key", "k.pem"}, "together"},
		{[]string{"--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "exclude"},
	} {
		_, err := parseServe(c.args, func(string) (string, bool) { return "", false }, io.Discard)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("serve %s: %v; want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// TestSelfSigned: the certificate covers localhost, loopback and the given
// addresses, for server authentication, from an hour ago.
func TestSelfSigned(t *testing.T) {
	now := time.Now()
	cert, err := selfSigned([]net.IP{net.ParseIP("192.168.1.7")}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "192.168.1.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("the self-signed certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool, CurrentTime: now}); err == nil {
		t.Error("the self-signed certificate verifies for example.com")
	}
}
