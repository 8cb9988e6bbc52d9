package transporttest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

func TestIssuedCertificatesChainOnlyToTheirCA(t *testing.T) {
	ca := NewCA(t)
	other := NewCA(t)
	p := ca.Issue(t, "daemon.example", "10.0.0.7")
	pair, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "daemon.example", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify against own CA for usage %v: %v", usage, err)
		}
	}
	if err := leaf.VerifyHostname("10.0.0.7"); err != nil {
		t.Errorf("IP SAN: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: other.Pool()}); err == nil {
		t.Error("certificate verified against an unrelated CA")
	}
	def := ca.Issue(t)
	if def.CertFile == p.CertFile {
		t.Fatal("second Issue overwrote the first")
	}
	dp, err := tls.LoadX509KeyPair(def.CertFile, def.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := x509.ParseCertificate(dp.Certificate[0])
	if dl.Subject.CommonName != "localhost" || len(dl.IPAddresses) != 2 || !dl.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("default names: CN %q IPs %v", dl.Subject.CommonName, dl.IPAddresses)
	}
}
