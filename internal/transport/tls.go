package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// MinTLSVersion is the oldest TLS either end accepts.
const MinTLSVersion = tls.VersionTLS12

// ServerTLSConfig loads the server's certificate and, with ClientCA, the
// pool client certificates must chain to, both reloaded when their files
// change (see ServerConfig.ReloadInterval). Nil without TLS settings.
func ServerTLSConfig(cfg ServerConfig) (*tls.Config, error) {
	if !cfg.TLS() {
		return nil, nil
	}
	return serverTLSConfig(cfg.withDefaults(), cfg.withDefaults().reloadSettings(nil))
}

// ClientTLSConfig builds the client side: CACert (system roots when
// empty), an optional client certificate for mTLS, and ServerName to
// override the name checked in the server's certificate.
func ClientTLSConfig(cfg ClientConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: MinTLSVersion, ServerName: cfg.ServerName}
	if cfg.CACert != "" {
		pool, err := loadPool("CA certificate", cfg.CACert)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	switch {
	case cfg.Cert != "" && cfg.Key != "":
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: cannot load client certificate %s with key %s: %v", cfg.Cert, cfg.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case cfg.Cert != "":
		return nil, fmt.Errorf("tls: client certificate %s (--cert) needs its key (--key)", cfg.Cert)
	case cfg.Key != "":
		return nil, fmt.Errorf("tls: client key %s (--key) needs its certificate (--cert)", cfg.Key)
	}
	return tc, nil
}

func loadPool(what, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: cannot read %s %s: %w", what, path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s %s holds no PEM certificate", what, path)
	}
	return pool, nil
}
