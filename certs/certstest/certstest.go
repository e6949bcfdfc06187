// Package certstest makes certificates for tests, as PEM: a CA and the serving certificates it signs,
// as cert-manager's CA Issuer does, and self-signed ones.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA signs serving certificates.
type CA struct {
	Certificate *x509.Certificate
	Key         *ecdsa.PrivateKey
	// PEM is the CA's certificate, for a webhook configuration's caBundle.
	PEM []byte
}

// NewCA makes a CA valid from an hour ago for a day.
func NewCA(t testing.TB, commonName string) *CA {
	t.Helper()
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: commonName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, key := sign(t, template, nil, nil)
	certificate, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Certificate: certificate, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool trusts the CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate)
	return pool
}

// Serving issues a serving certificate for 127.0.0.1 and localhost with serial, valid from an hour ago
// for a day, with a new key; it returns tls.crt and tls.key.
func (ca *CA) Serving(t testing.TB, serial *big.Int) (certPEM, keyPEM []byte) {
	t.Helper()
	template := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "backupguard-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, key := sign(t, template, ca.Certificate, ca.Key)
	return encode(t, der, key)
}

// SelfSigned makes a certificate from template signed by its own new key (serial 1 when the template
// has none); it returns tls.crt and tls.key.
func SelfSigned(t testing.TB, template *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	if template.SerialNumber == nil {
		template.SerialNumber = big.NewInt(1)
	}
	der, key := sign(t, template, nil, nil)
	return encode(t, der, key)
}

// sign makes a new key and a certificate of it from template, signed by parent's key (by itself when
// parent is nil).
func sign(t testing.TB, template, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func encode(t testing.TB, der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
