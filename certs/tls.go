// Package certs serves the webhook's TLS: the certificate from a directory, followed as it rotates,
// with hardened protocol settings.
package certs

import "crypto/tls"

// ServingOptions hardens the webhook's TLS: TLS 1.2 at least, and HTTP/1.1 only unless HTTP/2 is asked
// for, because HTTP/2 servers are exposed to the Rapid Reset attack (CVE-2023-44487) and the API server
// does not need HTTP/2 to call webhooks.
func ServingOptions(enableHTTP2 bool, certificate *Watcher) []func(*tls.Config) {
	options := []func(*tls.Config){func(config *tls.Config) {
		config.MinVersion = tls.VersionTLS12
		config.GetCertificate = certificate.GetCertificate
	}}
	if !enableHTTP2 {
		options = append(options, func(config *tls.Config) { config.NextProtos = []string{"http/1.1"} })
	}
	return options
}
