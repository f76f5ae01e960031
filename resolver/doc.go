// Package resolver answers "which digest is <GUN>:<tag> signed to, and by which role" from a
// Notary v1 (Docker Content Trust) server, verifying the trust data exactly as the notary
// v0.7.0 client does, so that trustgate accepts and refuses what `docker pull` with
// DOCKER_CONTENT_TRUST=1 would.
//
// Why not the notary client library: it is unmaintained, logs through a global logrus,
// keeps state in package-level caches and cannot be told what time it is. Why not go-tuf:
// Notary's wire format (base64 bytes, "private":null key IDs, raw r‖s ECDSA, x509 root keys
// with CN = GUN, prefix-matched paths) is not TUF 1.0 and go-tuf cannot parse or verify it.
// See docs/trust.md (and the research notes on Notary v1 it summarises) for the algorithm; each
// function that mirrors a notary function names it.
//
// Flow of Client.Update (client.go, update.go): re-validate the trusted root (bootstrap via
// pinning/TOFU on first contact), fetch timestamp.json, then snapshot/targets/delegations by
// checksum (from memory or TrustDir when unchanged), verify signatures, structure, versions
// and expiry; on any failure update the root (following N.root.json if needed) and retry
// once. The result is an immutable State; Lookup and Tags apply docker's role rule on it.
package resolver
