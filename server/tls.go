package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// selfSignedLifetime is how long a --tls-self-signed certificate is valid.
const selfSignedLifetime = 90 * 24 * time.Hour

// serverTLS returns serve's TLS configuration, or nil for plain HTTP, and
// the SHA-256 fingerprint of the certificate it presents. The key
// exchanges are Go's defaults, which put X25519MLKEM768 (post-quantum
// hybrid) first; current browsers offer it, so the connections of tabs are
// post-quantum end to end. Only HTTP/1.1 is offered: WebSockets need it.
func serverTLS(c *serveConfig, hosts []net.IP) (*tls.Config, string, error) {
	var cert tls.Certificate
	var err error
	switch {
	case c.tlsCert != "" || c.tlsKey != "":
		if cert, err = tls.LoadX509KeyPair(c.tlsCert, c.tlsKey); err != nil {
			return nil, "", fmt.Errorf("serve: --tls-cert %s / --tls-key %s: %w", c.tlsCert, c.tlsKey, err)
		}
	case c.tlsSelfSigned:
		if cert, err = selfSigned(hosts, time.Now()); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", nil
	}
	sum := sha256.Sum256(cert.Certificate[0])
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	return cfg, colonHex(sum[:]), nil
}

// checkTLSFlags checks that the TLS flags go together.
func checkTLSFlags(c *serveConfig) error {
	switch {
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return errors.New("serve: give --tls-cert and --tls-key together")
	case c.tlsSelfSigned && c.tlsCert != "":
		return errors.New("serve: --tls-self-signed and --tls-cert exclude each other")
	}
	return nil
}

// selfSigned makes an ECDSA P-256 certificate for localhost, this host's
// name and the given addresses (and loopback), valid from an hour ago for
// selfSignedLifetime: for LAN demos, where people accept it once in their
// browser (and may compare the fingerprint serve prints).
func selfSigned(ips []net.IP, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "QFLARE (self-signed)", Organization: []string{"QFLARE"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serve: self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// colonHex writes b as upper-case hex pairs joined by colons, the way
// browsers show certificate fingerprints.
func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
