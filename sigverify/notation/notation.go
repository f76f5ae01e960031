// Package notation verifies Notary Project (Notation) signatures of an image digest: JWS and COSE
// envelopes stored as referrers (artifact type application/vnd.cncf.notary.signature), under a
// Notation trust policy document and a trust store laid out as the notation CLI lays it out
// (<dir>/x509/<ca|signingAuthority|tsa>/<name>/*.pem|*.crt).
package notation

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	// The envelope formats Notation signs with.
	_ "github.com/notaryproject/notation-core-go/signature/cose"
	_ "github.com/notaryproject/notation-core-go/signature/jws"

	"github.com/trustgate/trustgate/sigverify"
)

// Media types Notation uses.
const (
	ArtifactType  = "application/vnd.cncf.notary.signature"
	MediaTypeJWS  = "application/jose+json"
	MediaTypeCOSE = "application/cose"
	maxCertFiles  = 256
)

// Config names the trust policy document (trustpolicy.json, as `notation policy import` takes it)
// and the trust store directory.
type Config struct {
	TrustPolicy string
	TrustStore  string
}

// Verifier checks Notation signatures under one trust policy. Safe for concurrent use.
type Verifier struct {
	v notation.Verifier
}

// New loads and validates cfg. Trust policies whose verification level does not enforce
// authenticity (audit, skip) are refused: under them a signature by anyone would be served.
func New(cfg Config) (*Verifier, error) {
	if cfg.TrustPolicy == "" || cfg.TrustStore == "" {
		return nil, errors.New("trust_policy and trust_store are both required")
	}
	b, err := os.ReadFile(cfg.TrustPolicy)
	if err != nil {
		return nil, fmt.Errorf("trust_policy: %w", err)
	}
	var doc trustpolicy.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("trust_policy (%s): %w", cfg.TrustPolicy, err)
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("trust_policy (%s): %w", cfg.TrustPolicy, err)
	}
	for _, p := range doc.TrustPolicies {
		lvl, err := p.SignatureVerification.GetVerificationLevel()
		if err != nil {
			return nil, fmt.Errorf("trust_policy (%s): statement %q: %w", cfg.TrustPolicy, p.Name, err)
		}
		if lvl.Name != trustpolicy.LevelStrict.Name && lvl.Name != trustpolicy.LevelPermissive.Name {
			return nil, fmt.Errorf("trust_policy (%s): statement %q: verification level %q does not enforce authenticity; use strict or permissive", cfg.TrustPolicy, p.Name, lvl.Name)
		}
	}
	st, err := os.Stat(cfg.TrustStore)
	if err != nil {
		return nil, fmt.Errorf("trust_store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("trust_store (%s): not a directory", cfg.TrustStore)
	}
	v, err := verifier.New(&doc, dirStore(cfg.TrustStore), nil)
	if err != nil {
		return nil, fmt.Errorf("trust_policy (%s): %w", cfg.TrustPolicy, err)
	}
	return &Verifier{v: v}, nil
}

// dirStore is a trust store directory as the notation CLI lays it out. Certificates are read on
// each verification (verified results are cached by the caller), so a rotated CA takes effect
// without a restart.
type dirStore string

func (d dirStore) GetCertificates(_ context.Context, t truststore.Type, name string) ([]*x509.Certificate, error) {
	if !validStoreType(t) || name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("trust store %s/%s: invalid name", t, name)
	}
	dir := filepath.Join(string(d), "x509", string(t), name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trust store %s/%s: %w", t, name, err)
	}
	var certs []*x509.Certificate
	for i, e := range entries {
		if i == maxCertFiles {
			break
		}
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		cs, err := parseCerts(b)
		if err != nil {
			return nil, fmt.Errorf("trust store %s/%s/%s: %w", t, name, e.Name(), err)
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("trust store %s/%s: no certificates", t, name)
	}
	return certs, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	if !strings.Contains(string(b), "-----BEGIN") {
		return x509.ParseCertificates(b)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Verify looks for a Notation signature of subj among arts that the trust policy accepts for
// subj.Reference, fetching envelopes by digest through f.
func (v *Verifier) Verify(ctx context.Context, f sigverify.Fetcher, subj sigverify.Subject, arts []sigverify.Artifact) (sigverify.Result, error) {
	d := subj.Descriptor.Digest
	var why []error
	for _, a := range arts {
		if a.ArtifactType != ArtifactType || a.Subject == nil || a.Subject.Digest != d || len(a.Layers) != 1 {
			continue
		}
		l := a.Layers[0]
		if l.MediaType != MediaTypeJWS && l.MediaType != MediaTypeCOSE {
			continue
		}
		env, err := f.Blob(ctx, l.Digest, sigverify.MaxBlobBytes)
		switch {
		case errors.Is(err, sigverify.ErrNotFound):
			why = append(why, fmt.Errorf("%s: envelope %s: %w", a.Digest, l.Digest, err))
			continue
		case err != nil:
			return sigverify.Result{}, fmt.Errorf("%w: envelope %s: %w", sigverify.ErrUnavailable, l.Digest, err)
		}
		desc := ocispec.Descriptor{MediaType: subj.Descriptor.MediaType, Digest: d, Size: subj.Descriptor.Size}
		out, err := v.v.Verify(ctx, desc, env, notation.VerifierVerifyOptions{
			ArtifactReference:  subj.Reference + "@" + d.String(),
			SignatureMediaType: l.MediaType,
		})
		if err == nil && (out == nil || out.EnvelopeContent == nil) {
			err = errors.New("trust policy verified nothing")
		}
		if err != nil {
			why = append(why, fmt.Errorf("%s: %w", a.Digest, err))
			continue
		}
		si := out.EnvelopeContent.SignerInfo
		r := sigverify.Result{Verifier: "notation", Digest: d, Layout: l.MediaType, Artifact: a.Digest,
			SignedAt: si.SignedAttributes.SigningTime, TimeSource: "signer", NotAfter: si.SignedAttributes.Expiry}
		if len(si.CertificateChain) > 0 {
			r.Signer = si.CertificateChain[0].Subject.String()
			if na := si.CertificateChain[0].NotAfter; r.NotAfter.IsZero() || na.Before(r.NotAfter) {
				r.NotAfter = na
			}
		}
		if r.SignedAt.IsZero() {
			r.TimeSource = ""
		}
		return r, nil
	}
	if len(why) == 0 {
		return sigverify.Result{}, fmt.Errorf("%w: no Notation signature of %s", sigverify.ErrNotSigned, d)
	}
	return sigverify.Result{}, fmt.Errorf("%w: no Notation signature of %s verifies: %w", sigverify.ErrNotSigned, d, errors.Join(why...))
}

func validStoreType(t truststore.Type) bool {
	return t == truststore.TypeCA || t == truststore.TypeSigningAuthority || t == truststore.TypeTSA
}
