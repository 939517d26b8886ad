package auth

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCertPool reads a PEM file of CA certificates, for the daemon to verify client certificates
// (tls.client_ca_file) or the client to verify the daemon's (tls.ca_file).
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
