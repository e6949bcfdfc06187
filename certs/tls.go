// Package certs configures the webhook's serving TLS. The certificate itself is read from the
// certificate directory by controller-runtime's certificate watcher, which reloads it when the files
// change (a rotated cert-manager Secret), so no restart is needed.
package certs

import "crypto/tls"

// ServingOptions hardens the webhook's TLS: TLS 1.2 at least, and HTTP/1.1 only unless HTTP/2 is asked
// for, because HTTP/2 servers are exposed to the Rapid Reset attack (CVE-2023-44487) and the API server
// does not need HTTP/2 to call webhooks.
func ServingOptions(enableHTTP2 bool) []func(*tls.Config) {
	options := []func(*tls.Config){func(config *tls.Config) { config.MinVersion = tls.VersionTLS12 }}
	if !enableHTTP2 {
		options = append(options, func(config *tls.Config) { config.NextProtos = []string{"http/1.1"} })
	}
	return options
}
